"""The Litestar app: app factory, auth guards, error mapping and the HTTP controllers of every room."""
