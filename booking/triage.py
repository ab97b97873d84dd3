"""Pre-triage (预检分诊): validate a customer's answers, suggest a department, flag contraindications.

The answers are health data: they are sealed (AES-GCM, kernel.crypto) before they reach the table,
never written to a log line, shown to staff and to the customer who gave them, nobody else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from tortoise.backends.base.client import BaseDBAsyncClient

from booking.catalogue import active_questionnaire, active_questionnaires, concern_options, list_departments
from booking.errors import DepartmentNotFound, TriageNotFound
from booking.models import Booking, TriageQuestionnaire, TriageSubmission
from kernel import clock, crypto
from kernel.errors import ValidationFailed

MAX_TEXT = 1000


@dataclass
class TriageContent:
    """The decrypted content of a submission."""

    concerns: list[str]
    answers: dict[str, Any]
    flags: list[str]
    questionnaire_version: int
    questions: list[dict[str, Any]] = field(default_factory=list)


def _validate_answers(questionnaire: TriageQuestionnaire, answers: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Check answers against the questionnaire; returns (clean answers, flagged question keys)."""
    questions = {q["key"]: q for q in questionnaire.questions if q.get("kind") != "concerns"}
    for key in answers:
        if key not in questions:
            raise ValidationFailed("This questionnaire has no such question.", field=f"answers.{key}")
    clean: dict[str, Any] = {}
    flags: list[str] = []
    for key, question in questions.items():
        value = answers.get(key)
        if question["kind"] == "yes_no":
            if value is None:
                if question.get("required", True):
                    raise ValidationFailed("Please answer this question.", field=f"answers.{key}")
                continue
            if not isinstance(value, bool):
                raise ValidationFailed("Answer yes (true) or no (false).", field=f"answers.{key}")
            clean[key] = value
            if value and question.get("contraindication"):
                flags.append(key)
        else:  # text
            if value is None or value == "":
                if question.get("required", False):
                    raise ValidationFailed("Please answer this question.", field=f"answers.{key}")
                continue
            if not isinstance(value, str) or len(value) > MAX_TEXT:
                raise ValidationFailed(f"Answer in at most {MAX_TEXT} characters.", field=f"answers.{key}")
            clean[key] = value.strip()
    return clean, flags


async def submit_triage(
    conn: BaseDBAsyncClient,
    *,
    customer_id: int,
    concerns: list[str],
    answers: dict[str, Any],
    department_id: int | None = None,
) -> TriageSubmission:
    """Store a pre-triage form and work out where it should go.

    The suggested department is the one whose questionnaire lists most of the chosen concerns
    (ties go to the department the customer picked, then to the department list's order). The
    medical questions answered are those of the picked department, or of the suggested one.
    """
    departments = {d.id: d for d in await list_departments(conn)}
    questionnaires = {k: v for k, v in (await active_questionnaires(conn)).items() if k in departments}
    if department_id is not None and department_id not in departments:
        raise DepartmentNotFound(field="department_id")
    known = {c for q in questionnaires.values() for c in concern_options(q)}
    chosen = list(dict.fromkeys(concerns))
    for index, concern in enumerate(chosen):
        if concern not in known:
            raise ValidationFailed(f"Unknown concern {concern!r}.", field=f"concerns[{index}]")
    order = {d_id: i for i, d_id in enumerate(departments)}

    def rank(d_id: int) -> tuple[int, int, int]:
        score = len(set(chosen) & set(concern_options(questionnaires.get(d_id))))
        return (-score, 0 if d_id == department_id else 1, order[d_id])

    candidates = list(questionnaires) or list(departments)
    if not candidates:
        raise DepartmentNotFound("No department takes bookings yet.")
    if chosen or department_id is None:
        suggested_id = min(candidates, key=rank)
    else:
        suggested_id = department_id
    answered_id = department_id if department_id is not None else suggested_id
    questionnaire = await active_questionnaire(conn, answered_id)
    clean, flags = _validate_answers(questionnaire, answers)
    content = {
        "concerns": chosen,
        "answers": clean,
        "flags": flags,
        "questionnaire_version": questionnaire.version,
    }
    return await TriageSubmission.create(
        customer_id=customer_id,
        questionnaire_id=questionnaire.id,
        department_id=answered_id,
        suggested_department_id=suggested_id,
        answers_sealed=crypto.seal(msgspec.json.encode(content).decode()),
        needs_review=bool(flags),
        created_at=clock.now(),
        using_db=conn,
    )


async def get_triage(conn: BaseDBAsyncClient, triage_id: int, *, customer_id: int | None = None) -> TriageSubmission:
    """A submission; with `customer_id`, only that customer's (anyone else's is "not found")."""
    query = TriageSubmission.filter(id=triage_id).using_db(conn)
    if customer_id is not None:
        query = query.filter(customer_id=customer_id)
    submission = await query.first()
    if submission is None:
        raise TriageNotFound(field="triage_id")
    return submission


async def read_triage(conn: BaseDBAsyncClient, submission: TriageSubmission) -> TriageContent:
    data = msgspec.json.decode(crypto.unseal(submission.answers_sealed))
    questionnaire = await TriageQuestionnaire.get(id=submission.questionnaire_id, using_db=conn)
    return TriageContent(
        concerns=data["concerns"],
        answers=data["answers"],
        flags=data["flags"],
        questionnaire_version=data["questionnaire_version"],
        questions=questionnaire.questions,
    )


async def customer_triage(conn: BaseDBAsyncClient, customer_id: int) -> list[TriageSubmission]:
    return await TriageSubmission.filter(customer_id=customer_id).using_db(conn).order_by("-id")


@dataclass(frozen=True)
class ReadTriage:
    """A submission opened for display, with the booking it is attached to (if any)."""

    submission: TriageSubmission
    content: TriageContent
    booking_id: int | None


async def read_triages(conn: BaseDBAsyncClient, submissions: list[TriageSubmission]) -> dict[int, ReadTriage]:
    """Open several submissions at once, keyed by submission id."""
    if not submissions:
        return {}
    booked = dict(
        await Booking.filter(triage_id__in=[t.id for t in submissions]).using_db(conn).values_list("triage_id", "id")
    )
    return {
        t.id: ReadTriage(t, await read_triage(conn, t), booked.get(t.id)) for t in submissions
    }
