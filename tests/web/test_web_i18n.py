"""Simplified Chinese first on every page, English one switch away; data is never translated.

Labels, headers, buttons and enumerated values (case kind, media kind, link method,
custody actions and outcomes...) come from web/i18n.py in the viewer's language, the
stored value kept in a title attribute; JSON shown in pages keeps Chinese readable.
"""
from __future__ import annotations

import re
from urllib.parse import quote

from fastapi.testclient import TestClient
from sqlalchemy import select

from catalog import custody_log
from catalog.models import Case, MediaLink
from web.app import create_app
from web.i18n import MESSAGES, enum_label
from web_support import bare_english, login, sample_video, seed, use_language  # noqa: F401

CHINESE_PATH = "DCIM/20261128/执法_东方化工_001.mp4"


def _site(make_app, sample_video):  # noqa: ANN001, ANN202
    app = make_app()
    sd = seed(app, sample_video)
    with app.catalog.session() as s:
        custody_log.record(s, "copied", actor="station", media_id=sd.media_u1,
                           detail={"device_path": CHINESE_PATH, "note": "<script>alert('x')</script> & more"})
        link = s.get(MediaLink, sd.link_u1)
        link.reason = "执法人员张伟在检查时段内录制"
        s.execute(select(Case).where(Case.case_no == sd.case_u2)).scalar_one().kind = "coercive"
    return app, sd


def test_media_page_labels_and_values_in_both_languages(make_app, sample_video) -> None:  # noqa: ANN001
    app, sd = _site(make_app, sample_video)
    with TestClient(create_app(app)) as client:
        login(client, "rev")
        page = client.get(f"/media/{sd.media_u1}").text
        assert "<dt>类型</dt>" in page and "<dt>设备内路径</dt>" in page and "<dt>入库时间</dt>" in page
        assert "<dt>保存期限</dt>" in page and "校验时间" in page
        for english in ("kind", "path", "stored", "retention"):
            assert f"<dt>{english}</dt>" not in page, english
        assert "verified " not in page
        for header in ("method", "score", "by", "seq", "time", "actor", "action", "outcome", "from", "detail"):
            assert f"<th>{header}</th>" not in page, header
        assert "<th>关联方式</th><th>匹配度</th>" in page
        assert "<th>序号</th><th>时间</th><th>操作人</th><th>操作</th><th>结果</th><th>来源地址</th><th>详情</th>" in page
        # Enumerated values through the catalogue, the stored value kept for a reviewer.
        assert '<span class="enum" title="video">视频</span>' in page
        assert '<span class="enum" title="auto">自动匹配</span>' in page
        assert '<span class="enum" title="filename">文件名</span>' in page
        assert 'data-action="copied"><span class="enum" title="copied">已复制</span>' in page
        assert '<span class="enum" title="ok">成功</span>' in page
        assert bare_english(page) == [], bare_english(page)
        # Data stays as it was written.
        assert "执法人员张伟在检查时段内录制" in page and "REC_20260312_093000.mp4" in page

        use_language(client, "en")
        page = client.get(f"/media/{sd.media_u1}").text
        assert "<dt>Kind</dt>" in page and "<dt>Path on the device</dt>" in page and "<th>Method</th>" in page
        assert '<span class="enum" title="video">video</span>' in page
        assert '<span class="enum" title="auto">automatic</span>' in page
        assert "<dt>类型</dt>" not in page and "视频" not in page
        assert "执法人员张伟在检查时段内录制" in page  # data is not translated


def test_trail_details_show_chinese_unescaped_and_stay_html_safe(make_app, sample_video) -> None:  # noqa: ANN001
    app, sd = _site(make_app, sample_video)
    with TestClient(create_app(app)) as client:
        login(client, "rev")
        page = client.get(f"/media/{sd.media_u1}").text
        assert f'"device_path": "{CHINESE_PATH}"' in page
        assert "\\u6267" not in page
        assert not re.search(r"\\u(?!003c|003e|0026|0027)[0-9a-f]{4}", page)  # only the HTML-safety escapes
        # Still safe in HTML: <, >, & and ' in a detail are escaped.
        assert "<script>alert" not in page
        assert "\\u003cscript\\u003ealert(\\u0027x\\u0027)\\u003c/script\\u003e \\u0026 more" in page
    with TestClient(create_app(app)) as aud:
        login(aud, "aud")
        log = aud.get(f"/audit?media_id={sd.media_u1}").text
        assert CHINESE_PATH in log and "<script>alert" not in log


def test_case_and_search_show_enumerations_in_the_viewers_language(make_app, sample_video) -> None:  # noqa: ANN001
    app, sd = _site(make_app, sample_video)
    with TestClient(create_app(app)) as client:
        login(client, "admin")
        page = client.get(f"/cases/{quote(sd.case_u1)}").text
        assert '<dd id="case-kind"><span class="enum" title="inspection">执法检查</span></dd>' in page
        assert '<dd id="case-status"><span class="enum" title="open">办理中</span></dd>' in page
        assert "类型 inspection" not in page and ">inspection<" not in page and ">open<" not in page
        assert '<span class="enum" title="auto">自动匹配</span> · 执法人员张伟在检查时段内录制' in page
        assert "4 秒" in page
        found = client.get("/search?case_no=应急检").text
        assert ">执法检查<" in found and ">行政强制措施<" in found and ">办理中<" in found
        use_language(client, "en")
        page = client.get(f"/cases/{quote(sd.case_u1)}").text
        assert '<dd id="case-kind"><span class="enum" title="inspection">inspection</span></dd>' in page
        assert "执法检查" not in page and "4 s" in page
        assert ">coercive measure<" in client.get("/search?case_no=应急检").text


def test_every_page_is_chinese_by_default_and_english_on_request(make_app, sample_video) -> None:  # noqa: ANN001
    app, sd = _site(make_app, sample_video)
    pages = {
        "admin": ["/admin", "/admin/officers", "/admin/devices", "/admin/assignments", "/admin/retention",
                  "/admin/station", "/admin/accounts", "/admin/reports?kind=ratio", "/review",
                  "/search?officer=P0000", f"/cases/{quote(sd.case_u1)}", f"/cases/{quote(sd.case_u1)}/export",
                  f"/media/{sd.media_u1}", f"/media/{sd.media_orphan}"],
        "aud": ["/audit", f"/audit?action=streamed&outcome=refused&media_id={sd.media_u1}"],
        "P00001": ["/mine"],
    }
    for user, paths in pages.items():
        with TestClient(create_app(app)) as client:
            login(client, user)
            for path in paths:
                r = client.get(path)
                assert r.status_code == 200, (path, r.status_code)
                assert bare_english(r.text) == [], (path, bare_english(r.text))
                assert 'lang="zh-CN"' in r.text
            use_language(client, "en")
            for path in paths:
                r = client.get(path)
                assert 'lang="en"' in r.text
                assert not re.search(r"<(th|dt|button)>[^<]*[\u4e00-\u9fff]", r.text), path


def test_admin_pages_translate_states_kinds_and_roles(make_app, sample_video) -> None:  # noqa: ANN001
    app, sd = _site(make_app, sample_video)
    with TestClient(create_app(app)) as client:
        csrf = login(client, "admin")
        assert '<span class="enum" title="camera">执法记录仪</span>' in client.get("/admin/devices").text
        assert '<span class="enum" title="active">在岗</span>' in client.get("/admin/officers").text
        accounts = client.get("/admin/accounts").text
        assert '<span class="enum" title="reviewer">审核人员</span>' in accounts and ">停用</button>" in accounts
        retention = client.get("/admin/retention").text
        assert '<option value="case">案件</option>' in retention and '<option value="media">录像</option>' in retention
        r = client.post("/admin/holds", data={"target_kind": "media", "target_ref": str(sd.media_u1),
                                              "reason": "投诉 2026-17", "csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303
        retention = client.get("/admin/retention").text
        assert f'<span class="enum" title="media">录像</span> {sd.media_u1}' in retention
        assert "投诉 2026-17" in retention
        page = client.get(f"/media/{sd.media_u1}").text
        assert "已冻结（法律保全）" in page and "legal hold" not in page
        use_language(client, "en")
        assert '<option value="media">recording</option>' in client.get("/admin/retention").text
        assert '<span class="enum" title="camera">body camera</span>' in client.get("/admin/devices").text


def test_audit_filters_offer_translated_actions_and_outcomes(make_app, sample_video) -> None:  # noqa: ANN001
    app, sd = _site(make_app, sample_video)
    with TestClient(create_app(app)) as client:
        login(client, "aud")
        page = client.get("/audit?action=copied").text
        assert '<option value="copied" selected>已复制 (copied)</option>' in page
        assert '<option value="refused">拒绝 (refused)</option>' in page
        assert 'data-action="copied"><span class="enum" title="copied">已复制</span>' in page
        assert "<th>序号</th>" in page and "<th>seq</th>" not in page
        # A value the catalogue does not know still filters, and shows as itself.
        page = client.get("/audit?action=made_up_action").text
        assert '<option value="made_up_action" selected>made_up_action</option>' in page


def test_error_pages_speak_the_viewers_language(make_app, sample_video) -> None:  # noqa: ANN001
    app, sd = _site(make_app, sample_video)
    with TestClient(create_app(app)) as client:
        csrf = login(client, "rev")
        html = {"accept": "text/html"}
        r = client.get("/media/999999", headers=html)
        assert r.status_code == 404 and "没有编号为 999999 的录像" in r.text
        r = client.post(f"/media/{sd.media_orphan}/link", data={"case_no": sd.case_u1, "reason": " ", "csrf": csrf})
        assert r.status_code == 400 and "请填写理由" in r.text
        r = client.get("/no-such-page", headers=html)
        assert r.status_code == 404 and "未找到" in r.text and "Not Found" not in r.text
        use_language(client, "en")
        r = client.get("/media/999999", headers=html)
        assert r.status_code == 404 and "no recording 999999" in r.text
        # Plain-text answers keep the technical English text.
        assert "no recording 999999" in client.get("/media/999999", headers={"accept": "*/*"}).text


def test_catalogue_covers_enumerations_and_keeps_unknown_values() -> None:
    assert all(len(pair) == 2 and all(pair) for pair in MESSAGES.values())
    assert enum_label("zh-CN", "case_kind", "penalty") == "行政处罚"
    assert enum_label("en", "case_kind", "coercive") == "coercive measure"
    assert enum_label("zh-CN", "case_status", "移送公安") == "移送公安"  # data typed into an import stays
    for key in MESSAGES:
        zh, en = MESSAGES[key]
        assert zh.count("{") == en.count("{"), key
