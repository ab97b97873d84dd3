"""Staff password rules after NIST SP 800-63B-4 (§3.1.1.2): length, no composition rules, a blocklist.

What the guideline asks of a verifier and what we do:
- at least 15 characters for a password that is the only factor (staff log in with a password alone);
  at least 64 allowed (we allow 128); every printable character, spaces and Unicode allowed, counted
  as code points after NFKC normalisation; no rules such as "one digit and one symbol";
- compare against a blocklist of commonly used, expected or compromised values: the list below is a
  small one we keep in the code (well-known breach-corpus favourites long enough to pass the length
  rule, keyboard walks, the product's own words), plus checks for repeated or sequential characters
  and for the username inside the password. It is not a full breach corpus (hundreds of millions of
  entries, or a network call to a k-anonymity service); a clinic that wants one plugs it in here.
"""

from __future__ import annotations

import unicodedata

from kernel.errors import ValidationFailed

MIN_LENGTH = 15

# Lower-cased, compared after NFKC and with spaces removed as well as kept.
COMMON_PASSWORDS = frozenset(
    """
    123456789012345 1234567890123456 12345678901234567890 123456789123456789 111111111111111
    000000000000000 987654321098765 147258369147258 123123123123123 121212121212121 123456123456123
    password123456 password1234567 passwordpassword password12345678 mypassword12345 passw0rdpassw0rd
    p@ssw0rd123456 p@ssword123456 password!123456 changemechangeme changeme123456 letmeinletmein
    iloveyouiloveyou iloveyou1234567 iloveyou12345678 qwertyuiopasdfg qwertyuiopasdfgh qwertyuiop123456
    qwerty123456789 qwertyqwertyqwerty 1qaz2wsx3edc4rfv 1q2w3e4r5t6y7u8i zaq12wsxcde34rfv asdfghjklqwerty
    asdfghjkl123456 zxcvbnmasdfghjkl abc123456789012 abcdefghijklmno abcdefghijklmnop welcome123456789
    welcomewelcome welcome12345678 administrator1 administrator123 administrator1234 admin1234567890
    adminadminadmin admin123456789 administrator! superuser123456 rootpassword123 trustno1trustno1
    sunshine1234567 princess1234567 football1234567 baseball1234567 dragon123456789 monkey123456789
    starwars1234567 shadow123456789 master123456789 michael12345678 jennifer1234567 computer1234567
    internet1234567 whatever1234567 sunshinesunshine loveyouloveyou1 correcthorsebatterystaple
    thequickbrownfox thequickbrownfoxjumps passwordisstrong mysecurepassword strongpassword1 secretpassword1
    woaini1314520520 woaini5201314520 5201314520131452 woainiwoainiwoaini aini1314aini1314 zhang1234567890
    wang12345678901 li1234567890123 clinic123456789 clinicpassword1 clinicpassword123 staffpassword123
    frontdesk123456 frontdeskpassword finance123456789 financepassword1 campaign12345678 wechat123456789
    wechatpassword1 miniprogram123456 medicalbeauty123 beautyclinic1234 yimei1234567890 meirong123456789
    """.split()
)


def _sequential(text: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in zip(text, text[1:])}
    return len(steps) == 1 and steps <= {-1, 0, 1}


def _repeats_a_short_unit(text: str) -> bool:
    for size in range(1, len(text) // 2 + 1):
        if len(text) % size == 0 and text[:size] * (len(text) // size) == text:
            return True
    return False


def check_staff_password(password: str, *, username: str = "") -> None:
    """Refuse a password the guideline would refuse, saying why; `field` is always "password"."""
    normalised = unicodedata.normalize("NFKC", password)
    if not normalised.strip():
        raise ValidationFailed("A password cannot be only spaces.", field="password", reason="blank")
    if len(normalised) < MIN_LENGTH:
        raise ValidationFailed(f"Passwords need at least {MIN_LENGTH} characters (a passphrase of a few words "
                               "is easy to remember).", field="password", reason="too_short", min_length=MIN_LENGTH)
    folded = normalised.casefold()
    squeezed = "".join(folded.split())
    if folded in COMMON_PASSWORDS or squeezed in COMMON_PASSWORDS:
        raise ValidationFailed("This password is on the list of commonly used passwords.", field="password",
                               reason="common")
    if _sequential(squeezed) or _repeats_a_short_unit(squeezed):
        raise ValidationFailed("This password is a repeated or sequential pattern.", field="password",
                               reason="pattern")
    name = username.casefold()
    if len(name) >= 4 and name in squeezed:
        raise ValidationFailed("A password cannot contain the username.", field="password", reason="username")
