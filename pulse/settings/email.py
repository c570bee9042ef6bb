"""Email: any ESP through django-anymail (set ANYMAIL_* and EMAIL_BACKEND) or plain SMTP for self-hosting."""

from __future__ import annotations

from .env import env_bool, env_int, env_str

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "PulseEcom <alerts@pulse.localhost>")
ANYMAIL = {
    "SENDGRID_API_KEY": env_str("SENDGRID_API_KEY", ""),
    "MAILGUN_API_KEY": env_str("MAILGUN_API_KEY", ""),
    "POSTMARK_SERVER_TOKEN": env_str("POSTMARK_SERVER_TOKEN", ""),
}
