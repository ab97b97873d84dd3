"""Takes the recorded API reads again, on the current code, against DATABASE_URL; writes the answers as JSON.

    python -m tests.upgrade.replay_reads release-0.1.0.reads.json answers.json

A process of its own, so the upgraded database gets its own ORM connections and the reads go through
the whole app (guards, controllers, serialisation) exactly as a phone's would.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path

import httpx

from tests.upgrade.api_reads import take_reads


async def main(recorded_path: str, out_path: str) -> None:
    from api.app import create_app
    from kernel import db

    recorded = json.loads(Path(recorded_path).read_text())
    plan = [{"who": r["who"], "path": r["path"]} for r in recorded["reads"]]
    await db.init_db()
    try:
        app = create_app(embedded_worker=False)
        async with app.state.clinic_lifespan(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://upgrade.local") as http:
                answers = await take_reads(http, plan, recorded["staff"]["username"], recorded["staff"]["password"],
                                           datetime.fromisoformat(recorded["read_at"]))
    finally:
        await db.close_db()
    Path(out_path).write_text(json.dumps(answers, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
