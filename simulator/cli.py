"""`kizuna simulate`: publish a simulated fleet to an MQTT broker."""

import typer

app = typer.Typer(help="Publish a simulated fleet of connected products.", no_args_is_help=True)
