"""Demo booking data: two branches, three departments with triage questionnaires, services,
practitioners, schedules, and a week of open slots from today (idempotent; run at every start)."""

from __future__ import annotations

from datetime import timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from booking import service
from booking.models import Branch, Department, Schedule
from kernel import clock

BRANCHES = [
    ("jingan", "静安院区 Jing'an", "上海市静安区南京西路 1000 号", "021-60000001"),
    ("xuhui", "徐汇院区 Xuhui", "上海市徐汇区淮海中路 2000 号", "021-60000002"),
]

# The medical pre-screen every department asks; a "yes" to a contraindication flags the form.
MEDICAL_QUESTIONS = [
    {"key": "pregnant", "kind": "yes_no", "label": "目前是否怀孕或哺乳期？Pregnant or breastfeeding?",
     "contraindication": True},
    {"key": "allergies", "kind": "yes_no", "label": "是否有药物或麻药过敏史？Any drug or anaesthetic allergy?",
     "contraindication": True},
    {"key": "anticoagulants", "kind": "yes_no",
     "label": "近两周是否服用抗凝药（如阿司匹林）？Anticoagulants in the last two weeks?", "contraindication": True},
    {"key": "recent_procedure", "kind": "yes_no",
     "label": "近一个月是否做过医美项目？A cosmetic procedure in the last month?", "contraindication": False},
    {"key": "keloid", "kind": "yes_no", "label": "是否为瘢痕体质？History of keloid scars?", "contraindication": True},
    {"key": "notes", "kind": "text", "label": "其他想告诉医生的 Anything else the doctor should know", "required": False},
]

DEPARTMENTS = [
    {
        "code": "skin", "name": "皮肤管理 Skin care", "sort_order": 1,
        "concerns": ["痘痘 acne", "痘印 acne marks", "毛孔粗大 large pores", "敏感泛红 redness", "暗沉 dull skin"],
        "services": [
            ("皮肤检测与面诊 Skin analysis & consultation", 30, 0, False),
            ("水光补水 Hydrating skin booster", 60, 128000, False),
            ("果酸焕肤 Chemical peel", 45, 68000, False),
        ],
    },
    {
        "code": "injection", "name": "注射美容 Injectables", "sort_order": 2,
        "concerns": ["法令纹 nasolabial folds", "抬头纹 forehead lines", "苹果肌凹陷 mid-face volume", "咬肌肥大 masseter"],
        "services": [
            ("注射面诊 Injectables consultation", 30, 0, False),
            ("玻尿酸填充 Hyaluronic acid filler", 60, 498000, True),
            ("肉毒素除皱 Botulinum toxin", 30, 268000, True),
        ],
    },
    {
        "code": "laser", "name": "激光光电 Laser & energy", "sort_order": 3,
        "concerns": ["色斑 pigmentation", "松弛下垂 sagging", "痘印 acne marks", "细纹 fine lines", "脱毛 hair removal"],
        "services": [
            ("光电面诊 Energy-based consultation", 30, 0, False),
            ("热玛吉全脸 Thermage full face", 90, 1680000, True),
            ("光子嫩肤 IPL photorejuvenation", 45, 88000, False),
        ],
    },
]

# Monday to Saturday, morning and afternoon; Sunday a shorter day.
WEEK_HOURS = [(d, "09:30", "12:00") for d in range(6)] + [(d, "13:30", "18:00") for d in range(6)] + [
    (6, "10:00", "16:00")
]


async def load(conn: BaseDBAsyncClient) -> None:
    if not await Branch.filter(code=BRANCHES[0][0]).using_db(conn).exists():
        await _create_catalogue(conn)
    # Slots always reach a week ahead of today, however long ago the demo was first loaded.
    demo_branches = await Branch.filter(code__in=[b[0] for b in BRANCHES]).using_db(conn).values_list("id", flat=True)
    for schedule in await Schedule.filter(is_active=True, branch_id__in=demo_branches).using_db(conn):
        branch = await service.get_branch(conn, schedule.branch_id)
        await service.publish_slots(
            conn, schedule.id, from_date=clock.local_today(service.zone_of(branch)), days=7
        )


async def _create_catalogue(conn: BaseDBAsyncClient) -> None:
    branches = [
        await service.create_branch(conn, code=code, name=name, address=address, phone=phone)
        for code, name, address, phone in BRANCHES
    ]
    today = clock.local_today()
    for spec in DEPARTMENTS:
        department: Department = await service.create_department(
            conn, code=spec["code"], name=spec["name"], sort_order=spec["sort_order"]
        )
        await service.publish_questionnaire(
            conn, department_id=department.id, title=f"{spec['name']} 预检分诊",
            questions=[
                {"key": "concerns", "kind": "concerns", "label": "您想改善的问题 What bothers you?",
                 "options": spec["concerns"]},
                *MEDICAL_QUESTIONS,
            ],
        )
        for name, minutes, price_fen, consultation in spec["services"]:
            await service.create_service(
                conn, department_id=department.id, name=name, duration_minutes=minutes, price_fen=price_fen,
                requires_consultation=consultation,
            )
        for branch in branches:
            practitioner = await service.create_practitioner(
                conn, branch_id=branch.id, department_id=department.id,
                name=f"{spec['code'].title()} doctor ({branch.code})", title="主治医师",
            )
            await service.create_schedule(
                conn, branch_id=branch.id, department_id=department.id, practitioner_id=practitioner.id,
                slot_minutes=30, capacity=2, valid_from=today - timedelta(days=1), valid_until=None,
                hours=WEEK_HOURS, name=f"{branch.code} {spec['code']} weekly",
            )
