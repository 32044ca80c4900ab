"""The Faust worker keeps its data folder with the other run-time files: Faust's default,
``<app id>-data`` in the current folder, littered the repository (and an operator's
folder) with one folder per app id."""

from __future__ import annotations

from cardiostream.settings import load_settings
from streamer.app import create_app


def test_worker_data_folder_is_under_the_run_dir_not_the_current_folder(tmp_path) -> None:
    settings = load_settings()
    settings = settings.model_copy(update={"paths": settings.paths.model_copy(
        update={"run_dir": tmp_path / "fresh" / "run"})})
    app = create_app(settings, app_id="test-datadir")
    assert app.conf.datadir == tmp_path / "fresh" / "run" / "faust" / "test-datadir-data"
    # Faust makes only the last level itself, at start-up: a fresh run folder must work
    assert app.conf.datadir.parent.is_dir()
