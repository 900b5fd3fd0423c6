"""The sign-in page: email, password and one-time code, posted to /auth/login."""

from __future__ import annotations

from dash import dcc, html

from dashboard.i18n import t


def layout(lang: str, *, next_path: str, error: bool) -> html.Div:
    """A sign-in form; the server checks all three fields together."""
    return html.Div(
        html.Form(
            [
                html.H2(t("login.title", lang)),
                html.Div(t("login.error", lang), className="form-error") if error else None,
                html.Label(t("login.email", lang), htmlFor="login-email"),
                dcc.Input(
                    id="login-email",
                    name="email",
                    type="email",
                    required=True,
                    autoComplete="username",
                ),
                html.Label(t("login.password", lang), htmlFor="login-password"),
                dcc.Input(
                    id="login-password",
                    name="password",
                    type="password",
                    required=True,
                    autoComplete="current-password",
                ),
                html.Label(t("login.otp", lang), htmlFor="login-otp"),
                dcc.Input(
                    id="login-otp",
                    name="otp",
                    type="text",
                    inputMode="numeric",
                    pattern="[0-9]{6}",
                    maxLength=6,
                    # Staff always need it; customers only when they turned two-factor on.
                    required=False,
                    autoComplete="one-time-code",
                ),
                dcc.Input(type="hidden", name="next", value=next_path, id="login-next"),
                html.Button(
                    t("login.submit", lang),
                    type="submit",
                    id="login-submit",
                    className="btn btn-primary",
                ),
            ],
            method="POST",
            action="/auth/login",
            className="login-form",
        ),
        className="login-page",
    )
