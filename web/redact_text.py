"""Words of the redaction pages (zh-CN / English)."""
from __future__ import annotations

from collections.abc import Callable

TEXT: dict[str, tuple[str, str]] = {
    "redact.title": ("打码处理(生成衍生副本)", "Redact (make a derived copy)"),
    "redact.open": ("打码处理 / 截取片段或静帧", "Redact / cut a segment or a still"),
    "redact.intro": ("原件不会被修改：处理结果另存为新的衍生录像，须由另一名审核人批准后方可对外公开。",
                     "The original is never modified: the result is stored as a new derived recording, "
                     "which a second reviewer must approve before it may go to the public."),
    "redact.from": ("起点(秒或 分:秒)", "From (seconds or m:ss)"),
    "redact.to": ("终点(可空)", "To (optional)"),
    "redact.faces": ("自动检测并模糊人脸", "Find and blur faces automatically"),
    "redact.boxes": ("手动遮挡框(JSON，车牌、文件、屏幕；自动跟随)",
                     "Manual boxes (JSON: plates, documents, screens; followed across frames)"),
    "redact.boxes_hint": ('例 e.g. [{"t": 12.0, "x": 800, "y": 600, "w": 160, "h": 50, "label": "plate"}]', ""),
    "redact.mute": ("静音区间(如 12-15.5, 1:02-1:10)", "Mute ranges (e.g. 12-15.5, 1:02-1:10)"),
    "redact.still": ("只截取静帧(时间点，可空)", "Still only, at this time (optional)"),
    "redact.reason": ("理由(必填，记入处理记录)", "Reason (required, kept in the redaction log)"),
    "redact.submit": ("生成衍生副本", "Make the derived copy"),
    "redact.running": ("正在处理……处理时间约与录像时长相当，本页会自动刷新。",
                       "Redacting… it takes about as long as the recording plays; this page refreshes itself."),
    "redact.refresh": ("刷新", "Refresh"),
    "redaction.title": ("处理副本", "Redacted copy"),
    "redaction.original": ("原件", "Original"),
    "redaction.derived": ("衍生副本", "Derived copy"),
    "redaction.by": ("制作人", "Made by"),
    "redaction.at": ("制作时间", "Made at"),
    "redaction.reason": ("理由", "Reason"),
    "redaction.state": ("审批状态", "Approval"),
    "redaction.approved": ("已批准", "Approved"),
    "redaction.unapproved": ("未批准：不得对外公开", "NOT approved: may not go to the public"),
    "redaction.approve": ("批准(第二审核人)", "Approve (second reviewer)"),
    "redaction.note": ("备注", "Note"),
    "redaction.own": ("制作人本人不能批准，须由另一名审核人批准。",
                      "The author cannot approve; another reviewer must."),
    "redaction.detector": ("人脸检测", "Face detection"),
    "redaction.detections": ("检测到人脸的帧", "Frames with faces found"),
    "redaction.boxes": ("手动遮挡框", "Manual boxes"),
    "redaction.lost": ("跟踪丢失帧数", "frames lost by the tracker"),
    "redaction.mute": ("静音区间", "Muted ranges"),
    "redaction.segment": ("片段", "Segment"),
    "redaction.still": ("静帧", "Still"),
    "redaction.log": ("完整处理记录(JSON)", "Full redaction log (JSON)"),
    "redaction.view": ("查看处理副本", "Open the derived recording"),
    "redaction.copies": ("衍生副本", "Derived copies"),
    "redaction.none": ("—", "—"),
    "unit.s": ("秒", "s"),
}


def translator(lang: str) -> Callable[[str], str]:
    zh = lang.lower().startswith("zh")

    def rt(key: str) -> str:
        pair = TEXT.get(key)
        if pair is None:
            return key
        return pair[0] if zh or not pair[1] else pair[1]

    return rt
