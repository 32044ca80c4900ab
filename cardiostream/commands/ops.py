"""`cardiostream dashboards …` and `cardiostream metrics …`: the operations commands."""

from __future__ import annotations

import typer

dashboards_app = typer.Typer(no_args_is_help=True, help="Grafana dashboards (dashboards/).")
metrics_app = typer.Typer(no_args_is_help=True, help="The Prometheus metric catalogue.")


@dashboards_app.command("push")
def push(
    url: str = typer.Option(None, help="Grafana base URL [settings: grafana.url]."),
    folder_uid: str = typer.Option(None, help="Folder uid [settings: grafana.folder_uid]."),
    prometheus_url: str = typer.Option(
        None, help="Prometheus URL as Grafana reaches it [settings: grafana.prometheus_url]."),
) -> None:
    """Upsert the folder, the Prometheus datasource and every dashboard (idempotent).

    The token comes from CARDIOSTREAM_GRAFANA__TOKEN only, never from a flag
    (flags end up in shell history and process listings).
    """
    from cardiostream.settings import load_settings
    from dashboards.provision import ProvisionError
    from dashboards.provision import push as push_dashboards

    settings = load_settings(grafana__url=url, grafana__folder_uid=folder_uid,
                             grafana__prometheus_url=prometheus_url)
    try:
        report = push_dashboards(settings.grafana)
    except ProvisionError as exc:
        typer.echo(f"dashboards push failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"folder {settings.grafana.folder_uid}: {report.folder}")
    typer.echo(f"datasource {settings.grafana.datasource_uid}: {report.datasource}")
    for uid, version in report.dashboards.items():
        typer.echo(f"dashboard {uid}: version {version}")


@dashboards_app.command("list")
def list_dashboards() -> None:
    """List the dashboard definitions with their uids and panel counts."""
    from dashboards.catalog import load_dashboards, panels

    for stem, dash in load_dashboards().items():
        typer.echo(f"{dash['uid']}\t{stem}.json\t{sum(1 for _ in panels(dash))} panels"
                   f"\t{dash['title']}")


@metrics_app.command("catalogue")
def catalogue(markdown: bool = typer.Option(False, help="Print a Markdown table.")) -> None:
    """Print every metric the workers export: name, type, labels, help."""
    from cardiostream.metrics import catalogue as rows

    if markdown:
        typer.echo("| metric | type | labels | meaning |\n| --- | --- | --- | --- |")
    for name, kind, labels, doc in rows():
        exposed = f"{name}_total" if kind == "counter" else name
        if markdown:
            cell = doc.replace("|", "\\|")
            typer.echo(f"| `{exposed}` | {kind} | {', '.join(labels) or '-'} | {cell} |")
        else:
            typer.echo(f"{exposed}\t{kind}\t{','.join(labels)}\t{doc}")


def register(app: typer.Typer) -> None:
    app.add_typer(dashboards_app, name="dashboards")
    app.add_typer(metrics_app, name="metrics")
