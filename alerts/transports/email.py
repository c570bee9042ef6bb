"""Email transport: Django's mail API, so the backend (SMTP for self-hosting, any ESP through
django-anymail) is chosen by settings. HTML and plain-text bodies from templates/alerts/."""

from __future__ import annotations

import smtplib
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.template.loader import render_to_string
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alerts.rendering import message_from_payload

from .base import Outcome, Transport, TransportError, register


class EmailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipients: list[str] = Field(min_length=1, max_length=50)

    @field_validator("recipients")
    @classmethod
    def _valid_addresses(cls, value: list[str]) -> list[str]:
        cleaned: list[str] = []
        for address in value:
            address = address.strip()
            try:
                validate_email(address)
            except ValidationError as exc:
                raise ValueError(f"'{address}' is not a valid email address") from exc
            if address not in cleaned:
                cleaned.append(address)
        return cleaned


def _classify(exc: Exception) -> TransportError:
    """Refused recipients and bad credentials will not fix themselves; network trouble might."""
    if isinstance(exc, (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPAuthenticationError)):
        return TransportError(f"{type(exc).__name__}: {exc}", permanent=True)
    if isinstance(exc, smtplib.SMTPResponseException):
        return TransportError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=500 <= exc.smtp_code < 600,
                              response_code=exc.smtp_code)
    try:
        from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused

        if isinstance(exc, AnymailRecipientsRefused):
            return TransportError(str(exc), permanent=True)
        if isinstance(exc, AnymailAPIError):
            status = getattr(exc, "status_code", None)
            permanent = status is not None and 400 <= status < 500 and status != 429
            return TransportError(str(exc), permanent=permanent, response_code=status)
    except ImportError:  # anymail is optional for SMTP-only installs
        pass
    return TransportError(f"{type(exc).__name__}: {exc}", permanent=False)


@register
class EmailTransport(Transport):
    kind = "email"
    config_model = EmailConfig

    def notify(self, delivery: Any) -> Outcome:
        message = message_from_payload(delivery.payload)
        context = {"message": message}
        subject = f"[PulseEcom] {message.subject()}"
        text = render_to_string("alerts/notification.txt", context)
        html = render_to_string("alerts/notification.html", context)
        # A stable Message-ID lets mail systems drop the copy a retry after a crash might produce.
        domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip("> ") or "pulse.localhost"
        email = EmailMultiAlternatives(subject=subject, body=text, from_email=settings.DEFAULT_FROM_EMAIL,
                                       to=self.channel.config["recipients"],
                                       headers={"Message-ID": f"<{delivery.key}@{domain}>",
                                                "X-Pulse-Delivery": str(delivery.key)})
        email.attach_alternative(html, "text/html")
        try:
            email.send(fail_silently=False)
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise _classify(exc) from exc
        except Exception as exc:  # ESP backends raise their own types; classify rather than crash the task
            if type(exc).__module__.startswith("anymail"):
                raise _classify(exc) from exc
            raise
        return Outcome(None, 1, detail=f"{len(self.channel.config['recipients'])} recipient(s)")
