"""Words of the sharing pages, the recipient's page and the receipt (zh-CN / English)."""
from __future__ import annotations

from collections.abc import Callable

TEXT: dict[str, tuple[str, str]] = {
    "share.title": ("证据分享", "Evidence shared"),
    "share.list": ("分享记录", "Shares"),
    "share.new": ("分享给外部接收方", "Share with a recipient outside the bureau"),
    "share.targets": ("分享内容（案件编号或录像编号）", "What (case number or recording ids)"),
    "share.recipient": ("接收方", "Recipient"),
    "share.kind": ("接收方类型", "Recipient kind"),
    "share.content": ("内容", "Content"),
    "share.expires": ("有效期（如 7d、12h）", "Valid for (e.g. 7d, 12h)"),
    "share.code": ("设置访问码", "Require an access code"),
    "share.downloads": ("最多下载次数（可空）", "Download limit (optional)"),
    "share.note": ("备注（接收方不可见）", "Note (not shown to the recipient)"),
    "share.create": ("创建分享链接", "Create the link"),
    "share.created": ("分享已创建", "Share created"),
    "share.once": ("链接和访问码只显示这一次。请通过不同渠道分别告知接收方。",
                   "The link and the code are shown only this once. Give them to the recipient by separate channels."),
    "share.link": ("链接", "Link"),
    "share.access_code": ("访问码", "Access code"),
    "share.state": ("状态", "State"),
    "share.by": ("分享人", "Shared by"),
    "share.at": ("分享时间", "Shared at"),
    "share.until": ("有效期至", "Valid until"),
    "share.downloaded": ("下载次数", "Downloads"),
    "share.items": ("分享的文件", "Items shared"),
    "share.events": ("访问记录", "Views and downloads"),
    "share.revoke": ("撤销", "Revoke"),
    "share.revoke_reason": ("撤销理由", "Reason"),
    "share.revoked": ("已撤销", "Revoked"),
    "share.receipt": ("回执", "Receipt"),
    "share.none": ("暂无分享", "No shares yet"),
    "share.case": ("案件", "Case"),
    "share.recording": ("录像", "Recording"),
    "share.name": ("文件名", "File name"),
    "share.sha256": ("SHA-256", "SHA-256"),
    "share.size": ("大小", "Size"),
    "share.original": ("原始录像 SHA-256", "Original's SHA-256"),
    "share.approved_by": ("批准人", "Approved by"),
    "share.time": ("时间", "Time"),
    "share.from": ("来源地址", "From"),
    "share.agent": ("浏览器", "User agent"),
    "share.action": ("操作", "Action"),
    "share.outcome": ("结果", "Outcome"),
    "share.reason": ("原因", "Reason"),
    "share.yes": ("是", "yes"),
    "share.no": ("否", "no"),
    "share.unlimited": ("不限", "no limit"),
    "share.rules": ("原始文件仅可分享给法院、检察院或行政复议机关，且分享人须获授权；处理副本须经第二名审核人员批准后方可分享。",
                    "Originals go only to a court, prosecutor or reconsideration body, from an account granted that "
                    "right; redacted copies only once a second reviewer approved them."),
    # recipient page
    "recv.title": ("证据文件领取", "Evidence shared with you"),
    "recv.intro": ("以下文件由{org}分享给{recipient}。", "{org} shared the files below with {recipient}."),
    "recv.download": ("下载证据包（ZIP，BagIt 格式，可离线核验）", "Download the package (ZIP, BagIt, verifiable offline)"),
    "recv.receipt": ("查看回执（可打印）", "Receipt (printable)"),
    "recv.left": ("剩余下载次数", "Downloads left"),
    "recv.code_needed": ("此链接需要访问码。", "This link needs an access code."),
    "recv.code": ("访问码", "Access code"),
    "recv.submit": ("确认", "Continue"),
    "recv.wrong": ("访问码错误。", "Wrong access code."),
    "recv.locked": ("访问码错误次数过多，请 {minutes} 分钟后再试。",
                    "Too many wrong codes; try again in {minutes} minutes."),
    "recv.closed": ("无法访问", "Not available"),
    "recv.unknown": ("链接无效。请核对链接是否完整。", "This link is not valid. Check that it is complete."),
    "recv.revoked": ("此链接已被分享方撤销。", "This link was revoked by the sender."),
    "recv.expired": ("此链接已于 {at} 过期。", "This link expired on {at}."),
    "recv.used_up": ("此链接的下载次数已用完。", "This link's downloads are used up."),
    "recv.redacted_note": ("这些文件是经过遮挡处理并经批准的副本，不是原始录像。",
                           "These files are approved redacted copies, not the original recordings."),
    "recv.originals_note": ("这些文件是原始录像，逐字节与系统存档一致。",
                            "These files are the original recordings, byte for byte as archived."),
    "recv.language": ("English", "中文"),
    # receipt
    "rcpt.title": ("证据分享回执", "Evidence disclosure receipt"),
    "rcpt.org": ("分享单位", "Disclosed by"),
    "rcpt.share": ("分享编号", "Share"),
    "rcpt.downloads": ("下载记录", "Downloads"),
    "rcpt.no_downloads": ("尚未下载", "Not downloaded yet"),
    "rcpt.total": ("合计", "Total"),
    "rcpt.printed": ("回执生成时间", "Receipt made"),
    "rcpt.verify": ("接收方可用 sha256sum 或任何 BagIt 校验工具离线核验证据包中每个文件的 SHA-256。",
                    "The recipient can check every file's SHA-256 offline with sha256sum or any BagIt validator."),
    # sync player (case page)
    "sync.title": ("同步播放（按校正后时间）", "All recordings in sync (corrected time)"),
    "sync.play": ("播放", "Play"),
    "sync.pause": ("暂停", "Pause"),
    "sync.seek": ("时间轴", "Timeline"),
    "sync.in": ("标记起点", "Mark in"),
    "sync.out": ("标记终点", "Mark out"),
    "sync.clear": ("清除标记", "Clear marks"),
    "sync.segment": ("选定片段", "Segment"),
    "sync.keys": ("快捷键：空格 播放/暂停；← → 前后 1 秒；J 倒放（再按加速）；K 暂停；L 播放（再按加速）；I / O 标记起点 / 终点；"
                  "点击画面切换该路声音。",
                  "Keys: space play/pause; ← → one second; J backwards (again: faster); K pause; L forwards (again: "
                  "faster); I / O mark in / out; click a picture to toggle its sound."),
    # enumerations
    "kind.public": ("社会公众", "public"),
    "kind.court": ("人民法院", "court"),
    "kind.prosecutor": ("人民检察院", "prosecutor"),
    "kind.reconsideration": ("行政复议机关", "administrative reconsideration"),
    "kind.complainant": ("投诉举报人", "complainant"),
    "content.originals": ("原始文件", "originals"),
    "content.redacted": ("处理副本（已批准）", "approved redacted copies"),
    "state.open": ("有效", "open"),
    "state.revoked": ("已撤销", "revoked"),
    "state.expired": ("已过期", "expired"),
    "state.used_up": ("下载次数已用完", "downloads used up"),
    "action.share_created": ("创建分享", "share created"),
    "action.share_viewed": ("接收方查看", "viewed by recipient"),
    "action.share_downloaded": ("接收方下载", "downloaded by recipient"),
    "action.share_refused": ("拒绝接收方访问", "recipient refused"),
    "action.share_unlocked": ("访问码正确", "code accepted"),
    "action.share_revoked": ("撤销分享", "share revoked"),
    "action.share_receipt": ("查看回执", "receipt viewed"),
    "outcome.ok": ("成功", "ok"),
    "outcome.refused": ("拒绝", "refused"),
    "outcome.failed": ("失败", "failed"),
}


def translator(lang: str) -> Callable[..., str]:
    """st(key, **params): the text in `lang` (zh-CN unless 'en'); a missing key shows as itself."""
    index = 1 if lang == "en" else 0

    def st(key: str, **params: object) -> str:
        pair = TEXT.get(key)
        if pair is None:
            return key
        text = pair[index]
        return text.format(**params) if params else text

    return st
