// The dashboard's words in Vietnamese (the default) and English. Status labels are the national
// list's (DVCQG TrangThaiHoSo, contracts/status.py); tests/bus/test_dashboard.py keeps them
// equal to the contract's.

export const STATUS_LABELS = {
  vi: {
    1: "Mới đăng ký",
    2: "Được tiếp nhận",
    3: "Không được tiếp nhận",
    4: "Đang xử lý",
    5: "Yêu cầu bổ sung giấy tờ",
    6: "Yêu cầu thực hiện nghĩa vụ tài chính",
    7: "Công dân yêu cầu rút hồ sơ",
    8: "Dừng xử lý",
    9: "Đã xử lý xong",
    10: "Đã trả kết quả",
  },
  en: {
    1: "Newly registered",
    2: "Accepted",
    3: "Not accepted",
    4: "Processing",
    5: "Supplement requested",
    6: "Financial obligation requested",
    7: "Withdrawn by the applicant",
    8: "Processing stopped",
    9: "Processed",
    10: "Result returned",
  },
};

const MESSAGES = {
  vi: {
    title: "Bảng điều khiển trục liên thông",
    switchTo: "English",
    signInTitle: "Đăng nhập",
    signInHelp:
      "Nhập mã và khóa bí mật của ứng dụng được cấp quyền (cán bộ, người vận hành). Khóa không được lưu lại; phiên đăng nhập chỉ giữ trong thẻ trình duyệt này.",
    clientId: "Mã ứng dụng (client id)",
    clientSecret: "Khóa bí mật (client secret)",
    signIn: "Đăng nhập",
    signOut: "Đăng xuất",
    signedInAs: "Đăng nhập với: {0}",
    badCredentials: "Mã ứng dụng hoặc khóa bí mật không đúng.",
    sessionExpired: "Phiên đăng nhập đã hết hạn, vui lòng đăng nhập lại.",
    signInFailed: "Không đăng nhập được: {0}",
    day: "Ngày",
    refresh: "Làm mới",
    updatedAt: "Cập nhật lúc {0}",
    loading: "Đang tải…",
    failed: "Không tải được: {0}",
    forbidden: "Ứng dụng này không có quyền xem mục này: {0}",
    none: "Không có dữ liệu.",
    total: "Tổng",
    flowTitle: "Hồ sơ tiếp nhận trong ngày",
    flowReceived: "Đã tiếp nhận {0} hồ sơ trong ngày {1}.",
    receivingAgency: "Cơ quan tiếp nhận",
    handlingAgency: "Cơ quan xử lý",
    byStatus: "Theo trạng thái hiện tại",
    statsTitle: "Chỉ số phục vụ (bộ chỉ số 766)",
    statsPeriod: "Từ {0} đến {1} (giờ Việt Nam)",
    byCommune: "Theo xã, phường",
    byAgency: "Theo cơ quan xử lý",
    commune: "Xã, phường",
    agency: "Cơ quan xử lý",
    unknownCommune: "Chưa rõ",
    received: "Tiếp nhận",
    online: "Trực tuyến",
    onlineShare: "Tỉ lệ trực tuyến",
    finished: "Đã giải quyết",
    onTime: "Đúng hạn",
    late: "Trễ hạn",
    onTimeRate: "Tỉ lệ đúng hạn",
    overdueNow: "Đang quá hạn",
    chartTitle: "Tỉ lệ trực tuyến và tỉ lệ đúng hạn",
    alertsTitle: "Hồ sơ quá hạn và sắp đến hạn",
    alertsHidden: "{0} cảnh báo của hồ sơ đã kết thúc không hiển thị.",
    kind: "Cảnh báo",
    overdue: "Quá hạn",
    at_risk: "Sắp đến hạn",
    dossierCode: "Mã hồ sơ",
    procedure: "Mã TTHC",
    scope: "Phạm vi",
    wholeDossier: "Cả hồ sơ",
    step: "Bước {0}",
    dueOn: "Ngày hẹn trả",
    status: "Trạng thái",
    raisedAt: "Phát hiện lúc",
    connectorsTitle: "Tình trạng kết nối",
    connectorsWindow: "Số liệu trong {0} phút gần nhất.",
    connector: "Kết nối",
    health: "Tình trạng",
    ok: "Bình thường",
    failing: "Đang lỗi",
    idle: "Không hoạt động",
    lastSuccess: "Thành công gần nhất",
    delivered: "Đã chuyển",
    failures: "Lỗi",
    retries: "Thử lại",
    parked: "Đang treo",
    deadLettersTitle: "Thông điệp lỗi chờ xử lý",
    deadLettersOperators:
      "Chỉ người vận hành (operator) được xem, gửi lại hoặc hủy thông điệp lỗi, vì chúng chứa toàn bộ hồ sơ.",
    deadLettersTotal: "{0} thông điệp đang chờ.",
    fault: "Mã lỗi",
    reason: "Lý do",
    attempts: "Số lần thử",
    parkedAt: "Thời điểm",
    actions: "Xử lý",
    replay: "Gửi lại",
    discard: "Hủy",
    discardReason: "Lý do hủy",
    confirmDiscard: "Xác nhận hủy",
    cancel: "Bỏ qua",
    replayed: "Đã gửi lại thông điệp {0}.",
    discarded: "Đã hủy thông điệp {0}.",
    actionFailed: "Không thực hiện được: {0}",
  },
  en: {
    title: "Liên thông bus dashboard",
    switchTo: "Tiếng Việt",
    signInTitle: "Sign in",
    signInHelp:
      "Enter the id and secret of a client with the rights (officer, operator). The secret is not kept; the session lives in this browser tab only.",
    clientId: "Client id",
    clientSecret: "Client secret",
    signIn: "Sign in",
    signOut: "Sign out",
    signedInAs: "Signed in as {0}",
    badCredentials: "Unknown client id or wrong secret.",
    sessionExpired: "The session has expired: please sign in again.",
    signInFailed: "Could not sign in: {0}",
    day: "Day",
    refresh: "Refresh",
    updatedAt: "Updated at {0}",
    loading: "Loading…",
    failed: "Could not load: {0}",
    forbidden: "This client may not see this panel: {0}",
    none: "Nothing to show.",
    total: "Total",
    flowTitle: "Dossiers received on the day",
    flowReceived: "{0} dossiers received on {1}.",
    receivingAgency: "Receiving agency",
    handlingAgency: "Handling agency",
    byStatus: "By current status",
    statsTitle: "Service-quality indicators (766 index)",
    statsPeriod: "From {0} to {1} (Vietnam time)",
    byCommune: "By commune",
    byAgency: "By handling agency",
    commune: "Commune",
    agency: "Handling agency",
    unknownCommune: "Unknown",
    received: "Received",
    online: "Online",
    onlineShare: "Online share",
    finished: "Finished",
    onTime: "On time",
    late: "Late",
    onTimeRate: "On-time rate",
    overdueNow: "Overdue now",
    chartTitle: "Online share and on-time rate",
    alertsTitle: "Overdue and at-risk dossiers",
    alertsHidden: "{0} alerts of dossiers since closed are not shown.",
    kind: "Alert",
    overdue: "Overdue",
    at_risk: "At risk",
    dossierCode: "Dossier code",
    procedure: "Procedure",
    scope: "Scope",
    wholeDossier: "Whole dossier",
    step: "Step {0}",
    dueOn: "Due date",
    status: "Status",
    raisedAt: "Raised at",
    connectorsTitle: "Connector health",
    connectorsWindow: "Counts over the last {0} minutes.",
    connector: "Connector",
    health: "Health",
    ok: "OK",
    failing: "Failing",
    idle: "Idle",
    lastSuccess: "Last success",
    delivered: "Delivered",
    failures: "Failures",
    retries: "Retries",
    parked: "Parked",
    deadLettersTitle: "Dead letters",
    deadLettersOperators:
      "Only operators may see, replay or discard dead letters: they hold whole dossiers.",
    deadLettersTotal: "{0} waiting.",
    fault: "Fault",
    reason: "Reason",
    attempts: "Attempts",
    parkedAt: "Parked at",
    actions: "Action",
    replay: "Replay",
    discard: "Discard",
    discardReason: "Reason for discarding",
    confirmDiscard: "Discard it",
    cancel: "Cancel",
    replayed: "Dead letter {0} replayed.",
    discarded: "Dead letter {0} discarded.",
    actionFailed: "Could not do it: {0}",
  },
};

const LANGUAGE_KEY = "lienthong.dashboard.language";
const LOCALES = { vi: "vi-VN", en: "en-GB" };
const TIME_ZONE = "Asia/Ho_Chi_Minh";

let language = localStorage.getItem(LANGUAGE_KEY) === "en" ? "en" : "vi";

export function currentLanguage() {
  return language;
}

export function setLanguage(next) {
  language = next === "en" ? "en" : "vi";
  localStorage.setItem(LANGUAGE_KEY, language);
  document.documentElement.lang = language;
}

/** The message ``key`` in the current language, with {0}, {1}… replaced by ``values``. */
export function t(key, ...values) {
  const text = MESSAGES[language][key] ?? MESSAGES.vi[key] ?? key;
  return text.replace(/\{(\d+)\}/g, (_, n) => String(values[Number(n)] ?? ""));
}

export function statusLabel(status) {
  return STATUS_LABELS[language][status] ?? String(status);
}

/** Translate every element marked ``data-i18n`` under ``root``. */
export function translatePage(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) {
    node.textContent = t(node.dataset.i18n);
  }
}

export function formatNumber(value) {
  return new Intl.NumberFormat(LOCALES[language]).format(value);
}

export function formatPercent(value) {
  if (value === null || value === undefined) return "—";
  const format = { style: "percent", maximumFractionDigits: 1 };
  return new Intl.NumberFormat(LOCALES[language], format).format(value);
}

export function formatInstant(iso) {
  if (!iso) return "—";
  const format = { dateStyle: "short", timeStyle: "short", timeZone: TIME_ZONE };
  return new Intl.DateTimeFormat(LOCALES[language], format).format(new Date(iso));
}

export function formatDay(isoDay) {
  if (!isoDay) return "—";
  const [year, month, day] = isoDay.split("-").map(Number);
  const format = { dateStyle: "short", timeZone: "UTC" };
  return new Intl.DateTimeFormat(LOCALES[language], format).format(
    new Date(Date.UTC(year, month - 1, day)),
  );
}

/** Today in Vietnam, YYYY-MM-DD, whatever the browser's own time zone. */
export function todayInVietnam() {
  return new Intl.DateTimeFormat("en-CA", { timeZone: TIME_ZONE }).format(new Date());
}
