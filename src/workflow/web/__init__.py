"""The console: server-rendered pages in Chinese over the same services as the API, served by
the same process at ``/`` (``install``). Its styles and scripts ship in the package
(``web/static``); nothing is fetched from another host."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from .common import HERE, STATIC


def install(api: FastAPI) -> None:
    """Add the console's pages and its static files to the application."""
    from . import auth, pages

    for module in (auth, pages):
        api.include_router(module.router)
    for name in ("sheet", "oversight", "audit", "people"):  # the pages of the other roles, when present
        try:
            module = __import__(f"{__name__}.{name}", fromlist=["router"])
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue
        api.include_router(module.router)
    api.mount(STATIC, StaticFiles(directory=HERE / "static"), name="console-static")
