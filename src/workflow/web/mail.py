"""The mail that carries a one-time link (an invitation, a password reset).

Sent at once through the configured transport (SMTP, or the maildir without one), not through
the outbox: the outbox is kept in the database, and a link's secret must not be (only its
hash is). A failed delivery is shown to whoever asked for the link, who can send another.
"""
from __future__ import annotations

from fastapi import Request

from notifications import Address, OutgoingMessage

from ..bootstrap import App
from ..domain.errors import ConfigError
from ..service.sign_in import PURPOSES, Link
from .common import log, zh_time


def link_url(application: App, request: Request | None, link: Link) -> str:
    """The link's address: under ``WORKFLOW_CONSOLE_URL``, else the address the request came to."""
    base = application.settings.console_url or (str(request.base_url) if request is not None else "")
    if not base:
        raise ConfigError("WORKFLOW_CONSOLE_URL is not set: the address people open the console at is needed for "
                          "the link (e.g. https://jgswj.example.gov.cn)",
                          "未设置 WORKFLOW_CONSOLE_URL：生成链接需要控制台的访问地址（例如 https://jgswj.example.gov.cn）")
    return f"{base.rstrip('/')}/link/{link.secret}"


def link_message(application: App, url: str, link: Link) -> OutgoingMessage:
    st = application.settings
    account = link.account
    what = PURPOSES[link.record.purpose]
    intro = ("您的节约型机关创建工作账号已开通，请通过下面的链接设置密码，完成首次登录。"
             if link.record.purpose == "invitation"
             else "您（或您的上级协调人员）申请了重置密码，请通过下面的链接设置新密码。")
    text = (f"{account.name}：\n\n{intro}\n\n{url}\n\n登录名：{account.login}\n"
            f"链接有效期至北京时间 {zh_time(link.record.expires_at)}，只能使用一次。\n"
            "如非本人申请，请忽略本邮件，原密码仍然有效。\n\n"
            f"{st.mail_from_name}\n")
    return OutgoingMessage(message_id=f"<link.{link.record.id}.{link.record.purpose}@{st.message_domain}>",
                           sender=Address(st.mail_from, st.mail_from_name),
                           to=(Address(account.email or "", account.name),),
                           subject=f"【节约型机关创建】账号{what}链接", text=text)


async def mail_link(application: App, request: Request | None, link: Link) -> tuple[bool, str]:
    """Mail the link to the account's address: (delivered, why not)."""
    if not link.account.email:
        return False, "该账号没有电子邮箱，请将链接当面或以其他方式交给本人"
    url = link_url(application, request, link)
    try:
        results = await application.transport().send_many([(link_message(application, url, link),
                                                             application.clock.now())])
    except Exception as exc:  # the transport's own failure: logged, said to the person who asked
        log.error("link mail failed", error=f"{type(exc).__name__}: {exc}", account=link.account.id)
        return False, "邮件发送失败（已记录日志）"
    result = results[0]
    if not result.ok:
        log.warning("link mail refused", account=link.account.id, detail=result.detail)
        return False, f"邮件发送失败：{result.detail[:200]}"
    log.info("link mailed", account=link.account.id, purpose=link.record.purpose)
    return True, ""
