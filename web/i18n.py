"""User-facing words in Simplified Chinese (default) and English.

The language is chosen by the `lang` cookie (set by GET /lang); anything else
falls back to zh-CN.  A key missing from the table is shown as itself so a gap
is visible instead of silently blank.
"""
from __future__ import annotations

from starlette.requests import Request

DEFAULT_LANG = "zh-CN"
LANGS = ("zh-CN", "en")

# key: (zh-CN, en)
MESSAGES: dict[str, tuple[str, str]] = {
    "app.title": ("执法音视频证据管理", "Custody evidence"),
    "nav.search": ("检索", "Search"),
    "nav.review": ("待核队列", "Review queue"),
    "nav.admin": ("管理", "Administration"),
    "nav.reports": ("统计报表", "Reports"),
    "nav.audit": ("访问日志", "Custody log"),
    "nav.mine": ("我的录像", "My recordings"),
    "nav.logout": ("退出", "Log out"),
    "nav.language": ("English", "中文"),
    "login.title": ("登录", "Log in"),
    "login.username": ("用户名", "Username"),
    "login.password": ("密码", "Password"),
    "login.submit": ("登录", "Log in"),
    "login.failed": ("用户名或密码错误", "Wrong username or password"),
    "login.locked": ("登录失败次数过多，账号已锁定至", "Too many failed logins; the account is locked until"),
    "login.disabled": ("账号已停用", "The account is disabled"),
    "login.bad_form": ("表单已过期，请重新登录", "The form expired; please log in again"),
    "search.title": ("案件检索", "Find a case"),
    "search.case_no": ("案件编号", "Case number"),
    "search.officer": ("执法人员（编号或姓名）", "Officer (number or name)"),
    "search.device": ("设备编号", "Device serial"),
    "search.enterprise": ("检查对象（企业）", "Enterprise"),
    "search.date": ("日期", "Date"),
    "search.unlinked": ("仅显示未关联案件的录像", "Only recordings linked to no case"),
    "search.submit": ("检索", "Search"),
    "search.cases": ("案件", "Cases"),
    "search.recordings": ("录像", "Recordings"),
    "search.none": ("没有匹配的结果", "Nothing matches"),
    "case.title": ("案件", "Case"),
    "case.kind": ("类型", "Kind"),
    "case.enterprise": ("检查对象", "Enterprise"),
    "case.address": ("地址", "Address"),
    "case.unit": ("单位", "Unit"),
    "case.start": ("开始", "Start"),
    "case.end": ("结束", "End"),
    "case.status": ("状态", "Status"),
    "case.officers": ("执法人员", "Officers"),
    "case.timeline": ("录像时间线", "Timeline of recordings"),
    "case.no_media": ("本案件没有关联录像", "No recording is linked to this case"),
    "case.export": ("导出证据包", "Export evidence package"),
    "case.hazards": ("发现隐患", "Hazards found"),
    "media.title": ("录像", "Recording"),
    "media.play": ("播放", "Play"),
    "media.download": ("下载原始文件", "Download original"),
    "media.metadata": ("元数据", "Metadata"),
    "media.time": ("时间来源与校正", "Time sources and corrections"),
    "media.device_clock": ("设备时钟读数", "Device clock reading"),
    "media.recorded_start": ("校正后开始时间", "Corrected start"),
    "media.recorded_end": ("校正后结束时间", "Corrected end"),
    "media.time_source": ("时间来源", "Time source"),
    "media.clock_offset": ("时钟偏差（秒，设备减标准时间）", "Clock offset (s, device minus true time)"),
    "media.corrections": ("时钟校正记录", "Clock corrections"),
    "media.links": ("案件关联", "Case links"),
    "media.link": ("关联到案件", "Link to case"),
    "media.unlink": ("解除关联", "Unlink"),
    "media.reason": ("理由", "Reason"),
    "media.trail": ("保管链记录", "Custody trail"),
    "media.keyframes": ("关键帧", "Keyframes"),
    "media.officer": ("执法人员", "Officer"),
    "media.device": ("设备", "Device"),
    "media.size": ("大小", "Size"),
    "media.duration": ("时长", "Duration"),
    "media.flags": ("标记", "Flags"),
    "media.removed": ("已解除", "removed"),
    "review.title": ("待核队列（匹配不确定的录像）", "Review queue (doubtful matches)"),
    "review.resolve": ("处理", "Resolve"),
    "review.candidates": ("候选案件", "Candidate cases"),
    "review.no_case": ("不关联任何案件", "Link to no case"),
    "review.empty": ("队列为空", "The queue is empty"),
    "admin.title": ("管理", "Administration"),
    "admin.reports": ("统计报表", "Reports"),
    "admin.officers": ("执法人员", "Officers"),
    "admin.devices": ("设备", "Devices"),
    "admin.assignments": ("设备配发", "Device assignments"),
    "admin.retention": ("保存计划与冻结", "Retention plans and holds"),
    "admin.station": ("采集站与坞站状态", "Station and dock status"),
    "admin.accounts": ("账号", "Accounts"),
    "report.ratio": ("执法记录仪配备比例", "Recorder ratio"),
    "report.coverage": ("执法全过程记录覆盖率", "Recording coverage"),
    "report.usage": ("使用情况", "Usage"),
    "station.docks": ("坞站会话", "Dock sessions"),
    "station.queue": ("任务队列", "Job queue"),
    "station.failures": ("失败", "Failures"),
    "audit.title": ("保管链日志", "Custody log"),
    "audit.filter": ("筛选", "Filter"),
    "common.save": ("保存", "Save"),
    "common.yes": ("是", "yes"),
    "common.no": ("否", "no"),
    "common.actions": ("操作", "Actions"),
    "error.forbidden": ("无权访问", "Not allowed"),
    "error.not_found": ("未找到", "Not found"),
    "error.bad_request": ("请求无效", "Bad request"),
    "error.store_down": ("证据存储暂时无法访问", "The evidence store is not answering"),
    "error.store_broken": ("证据存储与目录不一致", "The evidence store does not match the catalog"),
}


def lang_of(request: Request) -> str:
    lang = request.cookies.get("lang", DEFAULT_LANG)
    return lang if lang in LANGS else DEFAULT_LANG


def translate(lang: str, key: str) -> str:
    pair = MESSAGES.get(key)
    if pair is None:
        return key
    return pair[0] if lang == "zh-CN" else pair[1]
