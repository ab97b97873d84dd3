"""`python -m bench.tokens`: what verifying a token new to the process costs the server's CPU.

    python -m bench.tokens --tokens 20000

Issues `--tokens` customer tokens, then verifies each once with PyJWT's general decode (the key, HS256, our
issuer and required claims, as the guard called it before round 7) and once with
`kernel.identity.tokens.decode_token` with its cache emptied first (what the guard does for a token this
process has not seen), twice each, alternating. Prints this process's CPU per token.
"""

from __future__ import annotations

import argparse
import time

import jwt

from kernel.identity import tokens


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tokens")
    parser.add_argument("--tokens", type=int, default=20000)
    args = parser.parse_args()
    key = tokens.get_settings().app.secret_key
    issued = [tokens.issue_customer_token(n + 1)[0] for n in range(args.tokens)]

    def pyjwt(token: str) -> None:
        jwt.decode(token, key, algorithms=["HS256"], issuer="clinic-miniprogram",
                   options={"require": ["exp", "iat", "sub", "typ"], "verify_exp": False, "verify_iat": False})

    def ours(token: str) -> None:
        tokens._VERIFIED.clear()
        tokens.decode_token(token)

    for name, verify in (("PyJWT decode", pyjwt), ("decode_token", ours), ("PyJWT decode", pyjwt),
                         ("decode_token", ours)):
        cpu = time.process_time()
        for token in issued:
            verify(token)
        print(f"{name:>12}: {(time.process_time() - cpu) / len(issued) * 1e6:5.1f} µs CPU a new token")


if __name__ == "__main__":
    main()
