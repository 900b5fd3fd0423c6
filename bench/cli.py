"""`kizuna bench ...`: benchmarks that print JSON (one module per benchmark)."""

import typer

app = typer.Typer(help="Benchmarks that print JSON results.", no_args_is_help=True)
app.command("layout")(__import__("bench.layout_bench", fromlist=["layout"]).layout)
app.command("rules")(__import__("bench.rules_bench", fromlist=["rules"]).rules)
app.command("dashboard")(__import__("bench.dashboard_bench", fromlist=["dashboard"]).dashboard)
app.command("ingest")(__import__("bench.ingest_bench", fromlist=["ingest"]).ingest)
app.command("notify")(__import__("bench.notify_bench", fromlist=["notify"]).notify)
app.command("devices")(__import__("bench.devices_bench", fromlist=["devices"]).devices)
app.command("api")(__import__("bench.api_bench", fromlist=["api"]).api)
