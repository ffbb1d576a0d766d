"""What the simulated portal checks in the records it is sent, and the codes it refuses them with.

The checks follow the gateway's habits: a missing field is ``200 RECORD_UNCOMPLETE``, a value of
the wrong type or format ``302 DATA_TYPE_INVALID``, a value outside its code list
``500 DATA_INCORRECT``, a malformed agency code ``106 AGENCY_ID_INCORRECT``. A call carries a
``data`` list and is refused whole when one record is wrong. The codes and the text checks are
the simulator kit's (:mod:`bus.testing`), shared with every gateway simulator.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from bus.testing import GatewayCode as Code
from bus.testing import GatewayRefusal, optional_text, required_text
from contracts import is_agency_code, is_dossier_code, is_procedure_code

__all__ = ["MAX_RECORDS", "read_dossiers", "read_steps"]

MAX_RECORDS: Final = 100
"""Most records one call may carry."""

_DATE_FORMAT: Final = "%Y%m%d%H%M%S"
_STATUSES: Final = range(1, 11)
_CHANNELS: Final = range(1, 4)
_APPLICANT_KINDS: Final = range(1, 3)
_DOSSIER_TEXTS: Final = (
    "TenTTHC",
    "MaLinhVuc",
    "TenLinhVuc",
    "SoBienNhan",
    "MaDoiTuong",
    "Email",
    "SoDienThoai",
    "TrichYeuHoSo",
)
_DOSSIER_DATES: Final = ("NgayHenTra", "NgayTra", "NgayKetThucXuLy")
_DOSSIER_LISTS: Final = (
    "TaiLieuNop",
    "DanhSachLePhi",
    "DanhSachHoSoBoSung",
    "DanhSachGiayToKetQua",
)
_STEP_TEXTS: Final = ("NguoiXuLy", "ChucDanh", "PhongBanXuLy", "NoiDungXuLy")
_STEP_DATES: Final = ("NgayBatDau", "NgayKetThucTheoQuyDinh")


def _code(record: dict[str, Any], name: str, allowed: range, *, required: bool) -> None:
    """An integer of a code list (bool is not one); absent is fine unless ``required``."""
    value = record.get(name)
    if value is None:
        if required:
            raise GatewayRefusal(Code.RECORD_UNCOMPLETE, f"Thiếu thông tin bắt buộc: {name}")
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, f"{name} phải là số nguyên")
    if value not in allowed:
        raise GatewayRefusal(Code.DATA_INCORRECT, f"{name} không thuộc danh mục: {value}")


def _date(record: dict[str, Any], name: str, *, required: bool) -> None:
    """A yyyyMMddHHmmss time; absent is fine unless ``required``."""
    value = required_text(record, name) if required else optional_text(record, name)
    if value is None:
        return
    try:
        if len(value) != 14:
            raise ValueError(value)
        datetime.strptime(value, _DATE_FORMAT)
    except ValueError as exc:
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, f"{name} phải có dạng yyyyMMddHHmmss") from exc


def _dossier_code(record: dict[str, Any]) -> str:
    code = required_text(record, "MaHoSo")
    if not is_dossier_code(code):
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, f"MaHoSo không đúng định dạng: {code[:60]}")
    return code


def _records(data: Any) -> list[dict[str, Any]]:
    if data is None:
        raise GatewayRefusal(Code.RECORD_UNCOMPLETE, "Thiếu thông tin bắt buộc: data")
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, "data phải là danh sách các đối tượng")
    if not data:
        raise GatewayRefusal(Code.RECORD_UNCOMPLETE, "data không có hồ sơ nào")
    if len(data) > MAX_RECORDS:
        raise GatewayRefusal(Code.DATA_INCORRECT, f"Mỗi lần gửi tối đa {MAX_RECORDS} bản ghi")
    return data


def _check_dossier(record: dict[str, Any]) -> None:
    _dossier_code(record)
    procedure = required_text(record, "MaTTHC")
    if not is_procedure_code(procedure):
        message = f"MaTTHC không đúng định dạng: {procedure[:40]}"
        raise GatewayRefusal(Code.DATA_TYPE_INVALID, message)
    required_text(record, "ChuHoSo")
    unit = required_text(record, "DonViXuLy")
    if not is_agency_code(unit):
        raise GatewayRefusal(Code.AGENCY_ID_INCORRECT, f"DonViXuLy không hợp lệ: {unit[:40]}")
    _date(record, "NgayTiepNhan", required=True)
    for name in _DOSSIER_DATES:
        _date(record, name, required=False)
    _code(record, "KenhThucHien", _CHANNELS, required=True)
    _code(record, "TrangThaiHoSo", _STATUSES, required=True)
    _code(record, "LoaiDoiTuong", _APPLICANT_KINDS, required=False)
    for name in _DOSSIER_TEXTS:
        optional_text(record, name)
    for name in _DOSSIER_LISTS:
        if not isinstance(record.get(name, []), list):
            raise GatewayRefusal(Code.DATA_TYPE_INVALID, f"{name} phải là danh sách")


def _check_step(step: dict[str, Any]) -> None:
    _dossier_code(step)
    _date(step, "ThoiDiemXuLy", required=True)
    _code(step, "TrangThai", _STATUSES, required=True)
    for name in _STEP_DATES:
        _date(step, name, required=False)
    for name in _STEP_TEXTS:
        optional_text(step, name)


def read_dossiers(data: Any) -> list[dict[str, Any]]:
    """The dossiers of a ``DongBoHoSoMC`` call, each checked; the first fault refuses all."""
    records = _records(data)
    for record in records:
        _check_dossier(record)
    return records


def read_steps(data: Any) -> list[dict[str, Any]]:
    """The progress steps of a ``CapNhatTienDoHoSoMC`` call, each checked."""
    steps = _records(data)
    for step in steps:
        _check_step(step)
    return steps
