"""User accounts: login, two-factor authentication, sessions, password resets and API keys."""
