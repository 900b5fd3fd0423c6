"""Dashboard pages: each module has `layout(lang, params)` and `register(app, ctx)`."""
