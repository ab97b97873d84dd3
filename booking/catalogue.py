"""What can be booked: branches, departments, services, practitioners and triage questionnaires."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from booking.errors import (
    BranchNotFound,
    CodeTaken,
    DepartmentNotFound,
    PractitionerNotFound,
    QuestionnaireNotFound,
    ServiceNotFound,
)
from booking.models import Branch, Department, Practitioner, Service, TriageQuestionnaire
from kernel import clock
from kernel.errors import ValidationFailed

QUESTION_KINDS = {"concerns", "text", "yes_no"}


def zone_of(branch: Branch) -> ZoneInfo:
    return ZoneInfo(branch.timezone)


def _checked_zone(name: str) -> str:
    """A branch's zone as stored (spaces around it dropped), held to the clinic zone's rule (`kernel.clock.one_offset_zone`): its schedules turn
    wall-clock hours into slots with no handling of the hour skipped or repeated, so with daylight saving time
    every slot would be an hour off half the year."""
    try:
        clock.one_offset_zone(name)
    except clock.ZoneRefused as refused:
        raise ValidationFailed(f"Time zone {name!r} is refused: a branch's time zone must be {refused}.",
                               field="timezone") from refused
    return name.strip()


async def create_branch(
    conn: BaseDBAsyncClient, *, code: str, name: str, address: str = "", phone: str = "",
    timezone: str = "Asia/Shanghai",
) -> Branch:
    timezone = _checked_zone(timezone)
    if await Branch.filter(code=code).using_db(conn).exists():
        raise CodeTaken(field="code")
    try:
        return await Branch.create(
            code=code, name=name, address=address, phone=phone, timezone=timezone,
            created_at=clock.now(), using_db=conn,
        )
    except IntegrityError as exc:
        raise CodeTaken(field="code") from exc


async def missing_branches(conn: BaseDBAsyncClient, branch_ids: list[int]) -> list[int]:
    """The ids among `branch_ids` that name no branch (other rooms check the branch ids staff give them)."""
    wanted = sorted(set(branch_ids))
    if not wanted:
        return []
    found = set(await Branch.filter(id__in=wanted).using_db(conn).values_list("id", flat=True))
    return [i for i in wanted if i not in found]


async def get_branch(conn: BaseDBAsyncClient, branch_id: int) -> Branch:
    """A branch by id (other rooms use this: vouchers are redeemed at a branch)."""
    branch = await Branch.get_or_none(id=branch_id, using_db=conn)
    if branch is None:
        raise BranchNotFound()
    return branch


async def branch_zones(conn: BaseDBAsyncClient) -> dict[int, ZoneInfo]:
    """Every branch's zone by id: a list mixing branches shows each booking in its own zone."""
    return {b.id: zone_of(b) for b in await Branch.all().using_db(conn)}


async def list_branches(conn: BaseDBAsyncClient, *, active_only: bool = True) -> list[Branch]:
    query = Branch.all().using_db(conn)
    if active_only:
        query = query.filter(is_active=True)
    return await query.order_by("id")


async def create_department(
    conn: BaseDBAsyncClient, *, code: str, name: str, description: str = "", sort_order: int = 0
) -> Department:
    if await Department.filter(code=code).using_db(conn).exists():
        raise CodeTaken(field="code")
    try:
        return await Department.create(
            code=code, name=name, description=description, sort_order=sort_order,
            created_at=clock.now(), using_db=conn,
        )
    except IntegrityError as exc:
        raise CodeTaken(field="code") from exc


async def get_department(conn: BaseDBAsyncClient, department_id: int, *, active_only: bool = False) -> Department:
    department = await Department.get_or_none(id=department_id, using_db=conn)
    if department is None or (active_only and not department.is_active):
        raise DepartmentNotFound()
    return department


async def list_departments(conn: BaseDBAsyncClient, *, active_only: bool = True) -> list[Department]:
    query = Department.all().using_db(conn)
    if active_only:
        query = query.filter(is_active=True)
    return await query.order_by("sort_order", "id")


async def create_service(
    conn: BaseDBAsyncClient, *, department_id: int, name: str, duration_minutes: int, price_fen: int = 0,
    requires_consultation: bool = False, description: str = "",
) -> Service:
    await get_department(conn, department_id)
    if duration_minutes <= 0 or duration_minutes > 12 * 60:
        raise ValidationFailed("A service lasts between 1 minute and 12 hours.", field="duration_minutes")
    if price_fen < 0:
        raise ValidationFailed("A price cannot be negative.", field="price_fen")
    return await Service.create(
        department_id=department_id, name=name, description=description, duration_minutes=duration_minutes,
        price_fen=price_fen, requires_consultation=requires_consultation, created_at=clock.now(), using_db=conn,
    )


async def get_service(conn: BaseDBAsyncClient, service_id: int, *, active_only: bool = False) -> Service:
    service = await Service.get_or_none(id=service_id, using_db=conn)
    if service is None or (active_only and not service.is_active):
        raise ServiceNotFound(field="service_id")
    return service


async def list_services(conn: BaseDBAsyncClient, *, department_id: int | None = None) -> list[Service]:
    query = Service.filter(is_active=True).using_db(conn)
    if department_id is not None:
        query = query.filter(department_id=department_id)
    return await query.order_by("department_id", "id")


async def create_practitioner(
    conn: BaseDBAsyncClient, *, branch_id: int, department_id: int, name: str, title: str = "",
    staff_id: int | None = None,
) -> Practitioner:
    await get_branch(conn, branch_id)
    await get_department(conn, department_id)
    return await Practitioner.create(
        branch_id=branch_id, department_id=department_id, name=name, title=title, staff_id=staff_id,
        created_at=clock.now(), using_db=conn,
    )


async def get_practitioner(conn: BaseDBAsyncClient, practitioner_id: int) -> Practitioner:
    practitioner = await Practitioner.get_or_none(id=practitioner_id, using_db=conn)
    if practitioner is None:
        raise PractitionerNotFound(field="practitioner_id")
    return practitioner


async def list_practitioners(conn: BaseDBAsyncClient, *, branch_id: int | None = None) -> list[Practitioner]:
    query = Practitioner.filter(is_active=True).using_db(conn)
    if branch_id is not None:
        query = query.filter(branch_id=branch_id)
    return await query.order_by("id")


def validate_questions(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check a questionnaire's shape; keys are unique, at most one concerns question."""
    seen: set[str] = set()
    concern_questions = 0
    cleaned: list[dict[str, Any]] = []
    for index, question in enumerate(questions):
        field = f"questions[{index}]"
        key, kind = question.get("key"), question.get("kind")
        if not key or key in seen:
            raise ValidationFailed("Every question needs a unique key.", field=f"{field}.key")
        if kind not in QUESTION_KINDS:
            raise ValidationFailed(f"kind must be one of {sorted(QUESTION_KINDS)}.", field=f"{field}.kind")
        if kind == "concerns":
            concern_questions += 1
            options = question.get("options") or []
            if not options or len(set(options)) != len(options):
                raise ValidationFailed("A concerns question lists distinct options.", field=f"{field}.options")
        seen.add(key)
        cleaned.append(question)
    if concern_questions > 1:
        raise ValidationFailed("A questionnaire has at most one concerns question.", field="questions")
    return cleaned


async def publish_questionnaire(
    conn: BaseDBAsyncClient, *, department_id: int, title: str, questions: list[dict[str, Any]]
) -> TriageQuestionnaire:
    """A new version becomes the department's active questionnaire; old answers keep their version."""
    await get_department(conn, department_id)
    questions = validate_questions(questions)
    latest = await TriageQuestionnaire.filter(department_id=department_id).using_db(conn).order_by("-version").first()
    await TriageQuestionnaire.filter(department_id=department_id, is_active=True).using_db(conn).update(
        is_active=False
    )
    try:
        return await TriageQuestionnaire.create(
            department_id=department_id, version=(latest.version + 1) if latest else 1, title=title,
            questions=questions, created_at=clock.now(), using_db=conn,
        )
    except IntegrityError as exc:  # two publications raced for the same version
        raise CodeTaken("Another version was published at the same time; retry.", field="questions") from exc


async def active_questionnaire(conn: BaseDBAsyncClient, department_id: int) -> TriageQuestionnaire:
    questionnaire = await TriageQuestionnaire.filter(
        department_id=department_id, is_active=True
    ).using_db(conn).order_by("-version").first()
    if questionnaire is None:
        raise QuestionnaireNotFound()
    return questionnaire


async def active_questionnaires(conn: BaseDBAsyncClient) -> dict[int, TriageQuestionnaire]:
    rows = await TriageQuestionnaire.filter(is_active=True).using_db(conn).order_by("version")
    return {q.department_id: q for q in rows}


def concern_options(questionnaire: TriageQuestionnaire | None) -> list[str]:
    if questionnaire is None:
        return []
    for question in questionnaire.questions:
        if question.get("kind") == "concerns":
            return list(question.get("options") or [])
    return []
