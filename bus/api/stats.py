"""``/v1/stats``: the 766 indicators over a period, per agency, commune or procedure.

The definitions are :mod:`bus.stats`'s; this room reads the query, asks the store, and shapes
the answer. Numbers are rounded here only (hours and days to 2 decimals, rates to 4).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, BeforeValidator, Field
from pydantic_core import PydanticCustomError
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.api.auth import require_read_all
from bus.api.problems import PROBLEM_JSON, Problem, validation_problem
from bus.calendar import WorkingCalendar, calendar_from_settings
from bus.settings import Settings
from bus.stats import MAX_PERIOD_DAYS, Grouping, GroupStats, Period, StatsReport, compute_stats
from bus.store.stats import load_dossier_facts
from contracts import VN_TZ, AgencyCode, ProcedureCode

__all__ = ["clock", "router", "store_engine", "working_calendar"]

_PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "Problem details (RFC 9457)"}
_TITLE: Final = "Invalid statistics query"
_ISO_DAY: Final = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_FIRST_DAY: Final = date.min + timedelta(days=1)
_LAST_DAY: Final = date.max - timedelta(days=1)


def _iso_day(value: object) -> object:
    # Pydantic alone would also read a Unix timestamp or a midnight datetime as a date; a
    # report's bounds are calendar days, written one way.
    if isinstance(value, str) and _ISO_DAY.fullmatch(value) is None:
        raise PydanticCustomError("date_format", "a date must be written YYYY-MM-DD")
    return value


LocalDay = Annotated[date, BeforeValidator(_iso_day)]


class _StatsRoute(APIRoute):
    """Answers an invalid query parameter with this endpoint's own problem title.

    The app-wide handler speaks of an "Invalid dossier", which a statistics query is not.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                problem = validation_problem(list(exc.errors()), prefix=("query",))
                problem.title = _TITLE
                raise problem from exc

        return checked


router = APIRouter(prefix="/v1/stats", tags=["statistics"], route_class=_StatsRoute)


# --- the answer ------------------------------------------------------------------------------


class ReceivedCounts(BaseModel):
    """Dossiers received in the period, by channel (``KenhThucHien``)."""

    total: int = Field(
        description="Received in the period: received_at's local date (Asia/Ho_Chi_Minh) is "
        "within from..to, whatever the dossier's status since"
    )
    in_person: int = Field(description="Channel 1, in person at the one-stop desk (trực tiếp)")
    online: int = Field(description="Channel 2, online (trực tuyến)")
    postal: int = Field(description="Channel 3, public postal service (bưu chính công ích)")


class Indicators(BaseModel):
    """The 766 indicators of a group of dossiers."""

    received: ReceivedCounts
    finished: int = Field(
        description="Dossiers that first reached 9, 10 or 8 (stopped) within the period, "
        "whenever received; includes those without a due date, which are neither on time "
        "nor late"
    )
    on_time: int = Field(
        description="Finished in the period no later than the due date moved by the working "
        "days spent waiting for a supplement, with at most one supplement request"
    )
    late: int = Field(
        description="Finished in the period after that effective due date, or after more than "
        "one supplement request"
    )
    on_time_rate: float | None = Field(
        description="on_time / (on_time + late), 0 to 1, 4 decimals; null when none was judged"
    )
    overdue_now: int = Field(
        description="A snapshot at as_of, not limited to the period: dossiers still open "
        "(status 1, 2, 4, 5, 6) whose effective due date is before today. Never a dossier "
        "without a due date, nor one whose supplement wait has not ended (its clock is stopped)"
    )
    average_processing_hours: float | None = Field(
        description="Mean over the dossiers finished in the period of finish − receipt − time "
        "waiting for supplements, in clock hours (nights and days off included), 2 decimals; "
        "null when none finished"
    )
    average_processing_working_days: float | None = Field(
        description="The same mean in working days: from the day of receipt (a day off counts "
        "as the next working day) to the finish day, less the working days waiting for "
        "supplements; 2 decimals; null when none finished"
    )


class GroupIndicators(Indicators):
    """One row of the report."""

    key: str = Field(
        description="The handling agency's code, the applicant's commune code ('unknown' when "
        "not given) or the procedure code, after group_by"
    )


class PeriodView(BaseModel):
    """The period the report covers."""

    first_day: date = Field(description="The `from` parameter: first local day, included")
    last_day: date = Field(description="The `to` parameter: last local day, included")
    time_zone: str = Field(description="The time zone of the days: Asia/Ho_Chi_Minh")


class Filters(BaseModel):
    """The filters the report was narrowed by."""

    procedure: str | None = Field(description="Only this procedure code, or all")
    agency: str | None = Field(description="Only this handling agency, or all")


class StatsAnswer(BaseModel):
    """``GET /v1/stats``: the indicators per group and in total."""

    period: PeriodView
    group_by: Grouping = Field(description="What the rows of `groups` are")
    filters: Filters
    as_of: datetime = Field(description="The moment `overdue_now` was judged at (UTC)")
    groups: list[GroupIndicators] = Field(
        description="One row per group with at least one dossier received, finished or "
        "overdue now, ordered by key"
    )
    total: Indicators = Field(description="All the groups together (not an average of rows)")


# --- what the route needs, overridable in tests ------------------------------------------------


def store_engine(request: Request) -> AsyncEngine:
    """The process's store."""
    engine: AsyncEngine = request.app.state.runtime.engine
    return engine


def working_calendar(request: Request) -> WorkingCalendar:
    """The working-day calendar of the app's settings, built on first use."""
    state = request.app.state
    calendar: WorkingCalendar | None = getattr(state, "stats_calendar", None)
    if calendar is None:
        settings: Settings = state.settings
        calendar = state.stats_calendar = calendar_from_settings(settings)
    return calendar


def clock() -> datetime:
    """Now, the moment overdue dossiers are judged at."""
    return datetime.now(UTC)


# --- the route -------------------------------------------------------------------------------


@router.get(
    "",
    response_model=StatsAnswer,
    summary="Service-quality indicators (bộ chỉ số 766) over a period, per group",
    responses={403: _PROBLEM, 422: _PROBLEM, 503: _PROBLEM},
    dependencies=[Depends(require_read_all)],
)
async def get_stats(
    first_day: Annotated[
        LocalDay,
        Query(
            alias="from",
            description="First day of the period, YYYY-MM-DD, local (Asia/Ho_Chi_Minh), included",
            examples=["2026-12-01"],
        ),
    ],
    last_day: Annotated[
        LocalDay,
        Query(
            alias="to",
            description=f"Last day of the period, YYYY-MM-DD, included; at most "
            f"{MAX_PERIOD_DAYS} days after `from` counting both",
            examples=["2026-12-31"],
        ),
    ],
    engine: Annotated[AsyncEngine, Depends(store_engine)],
    calendar: Annotated[WorkingCalendar, Depends(working_calendar)],
    now: Annotated[datetime, Depends(clock)],
    group_by: Annotated[
        Grouping,
        Query(description="Rows per handling agency, applicant's commune, or procedure"),
    ] = Grouping.AGENCY,
    procedure: Annotated[
        ProcedureCode | None, Query(description="Only dossiers of this procedure code")
    ] = None,
    agency: Annotated[
        AgencyCode | None, Query(description="Only dossiers this agency handles")
    ] = None,
) -> StatsAnswer:
    """Received (by channel), finished on time and late per the 766 rule, overdue now, and the
    average processing time, per group and in total.

    On time: finished (9, 10, or stopped) no later than the due date moved by the working days
    spent waiting for a supplement; more than one supplement request is late. The README's
    "Statistics (bộ chỉ số 766)" section gives every definition.
    """
    period = _period(first_day, last_day)
    facts = await load_dossier_facts(engine, period, now, procedure=procedure, agency=agency)
    report = compute_stats(facts, period=period, grouping=group_by, calendar=calendar, now=now)
    return _answer(report, Filters(procedure=procedure, agency=agency))


def _period(first_day: date, last_day: date) -> Period:
    """The period, or a 422 naming the bound that is wrong."""
    # The period is read as instants from local midnight to the midnight after its last day,
    # which must exist: 0001-01-01 00:00 at +07:00 is before the first UTC instant Python
    # knows, and 9999-12-31 has no next day.
    for name, day in (("from", first_day), ("to", last_day)):
        if not _FIRST_DAY <= day <= _LAST_DAY:
            raise _refusal(
                name, "the day is out of range", f"a day from {_FIRST_DAY} to {_LAST_DAY}"
            )
    if last_day < first_day:
        raise _refusal("to", "the period ends before it starts", "a day on or after `from`")
    period = Period(first_day, last_day)
    if period.days > MAX_PERIOD_DAYS:
        raise _refusal(
            "to",
            f"the period covers {period.days} days",
            f"at most {MAX_PERIOD_DAYS} days from `from` to `to`, both included",
        )
    return period


def _refusal(field: str, problem: str, allowed: str) -> Problem:
    return Problem(
        422,
        _TITLE,
        f"{problem}: {allowed}",
        kind="validation",
        errors=[{"field": field, "problem": problem, "allowed": allowed}],
    )


def _answer(report: StatsReport, filters: Filters) -> StatsAnswer:
    return StatsAnswer(
        period=PeriodView(
            first_day=report.period.first_day,
            last_day=report.period.last_day,
            time_zone=VN_TZ.key,
        ),
        group_by=report.grouping,
        filters=filters,
        as_of=report.as_of.astimezone(UTC),
        groups=[GroupIndicators(key=g.key, **_indicators(g)) for g in report.groups],
        total=Indicators(**_indicators(report.total)),
    )


def _indicators(stats: GroupStats) -> dict[str, Any]:
    return {
        "received": ReceivedCounts(
            total=stats.received,
            in_person=stats.received_in_person,
            online=stats.received_online,
            postal=stats.received_postal,
        ),
        "finished": stats.finished,
        "on_time": stats.on_time,
        "late": stats.late,
        "on_time_rate": _rounded(stats.on_time_rate, 4),
        "overdue_now": stats.overdue_now,
        "average_processing_hours": _rounded(stats.average_processing_hours, 2),
        "average_processing_working_days": _rounded(stats.average_processing_working_days, 2),
    }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
