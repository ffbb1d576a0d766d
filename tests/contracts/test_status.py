"""Tests of dossier statuses, channels and applicant kinds."""

from __future__ import annotations

import pytest

from contracts import (
    FINISHED_STATUSES,
    TERMINAL_STATUSES,
    ApplicantKind,
    Channel,
    DossierStatus,
)


def test_status_values_are_the_dvcqg_codes() -> None:
    """The enum carries exactly the ten DVCQG TrangThaiHoSo values 1..10."""
    assert [status.value for status in DossierStatus] == list(range(1, 11))
    assert DossierStatus(1) is DossierStatus.NEW
    assert DossierStatus(10) is DossierStatus.RESULT_RETURNED


@pytest.mark.parametrize("enum", [DossierStatus, Channel, ApplicantKind])
def test_every_member_has_both_labels(enum: type[DossierStatus | Channel | ApplicantKind]) -> None:
    """Every member has a distinct, non-empty Vietnamese and English label."""
    members = list(enum)
    assert all(member.label_vi and member.label_en for member in members)
    assert len({member.label_vi for member in members}) == len(members)
    assert len({member.label_en for member in members}) == len(members)


def test_status_labels() -> None:
    """Labels use the national wording."""
    assert DossierStatus.NEW.label_vi == "Mới đăng ký"
    assert DossierStatus.RESULT_RETURNED.label_en == "Result returned"


def test_finished_statuses_follow_the_on_time_rule() -> None:
    """Processed, result returned and stopped count as finished for the on-time rule."""
    assert {
        DossierStatus.PROCESSED,
        DossierStatus.RESULT_RETURNED,
        DossierStatus.STOPPED,
    } == FINISHED_STATUSES


def test_terminal_statuses() -> None:
    """Not accepted, withdrawn, stopped and result returned end a dossier's life."""
    assert {
        DossierStatus.NOT_ACCEPTED,
        DossierStatus.WITHDRAWN,
        DossierStatus.STOPPED,
        DossierStatus.RESULT_RETURNED,
    } == TERMINAL_STATUSES


def test_channel_and_applicant_codes() -> None:
    """Channel and applicant kind carry the KenhThucHien and LoaiDoiTuong codes."""
    assert (Channel.IN_PERSON, Channel.ONLINE, Channel.POSTAL) == (1, 2, 3)
    assert (ApplicantKind.CITIZEN, ApplicantKind.ORGANISATION) == (1, 2)
