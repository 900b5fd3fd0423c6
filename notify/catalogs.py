"""Translation catalogs of the product's voice: extract, update and compile (Babel gettext).

`python -m notify.catalogs` regenerates notify/locale/kizuna.pot from notify/templates.py,
merges it into each language's .po, and compiles the .mo files that ship with the package.
"""

from __future__ import annotations

import io
from functools import cache
from gettext import GNUTranslations
from importlib import resources
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from notify.templates import COMMON_CONTEXT, COMMON_MESSAGES, TEMPLATES

DOMAIN = "kizuna"
LANGUAGES = ("en", "ja")


def locale_dir() -> Path:
    """Where the catalogs live inside the package."""
    return Path(str(resources.files("notify"))) / "locale"


def source_messages() -> list[tuple[str, str]]:
    """Every (msgctxt, msgid) the voice uses."""
    messages = [(COMMON_CONTEXT, text) for text in COMMON_MESSAGES]
    for template in TEMPLATES.values():
        messages += [(template.kind, template.title), (template.kind, template.body)]
    return messages


def template_catalog() -> Catalog:
    """The .pot catalog extracted from the templates."""
    catalog = Catalog(project="kizuna", domain=DOMAIN, fuzzy=False)
    for context, msgid in source_messages():
        catalog.add(msgid, context=context)
    return catalog


def po_path(language: str) -> Path:
    """The .po file of one language."""
    return locale_dir() / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(language: str) -> Catalog:
    """The parsed .po catalog of one language."""
    with po_path(language).open("rb") as handle:
        return read_po(handle, locale=language, domain=DOMAIN)


def compiled_bytes(catalog: Catalog) -> bytes:
    """The .mo bytes of a catalog (deterministic for the same catalog)."""
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    return buffer.getvalue()


def update_and_compile() -> None:
    """Regenerate the .pot, merge it into every .po and compile every .mo."""
    template = template_catalog()
    with (locale_dir() / f"{DOMAIN}.pot").open("wb") as handle:
        write_po(handle, template, omit_header=False, sort_output=True)
    for language in LANGUAGES:
        catalog = read_catalog(language)
        catalog.update(template, no_fuzzy_matching=True)
        with po_path(language).open("wb") as handle:
            write_po(handle, catalog, sort_output=True, ignore_obsolete=True)
        po_path(language).with_suffix(".mo").write_bytes(compiled_bytes(catalog))


@cache
def translations(language: str) -> GNUTranslations:
    """The compiled catalog of one language, loaded once."""
    with po_path(language).with_suffix(".mo").open("rb") as handle:
        return GNUTranslations(handle)


if __name__ == "__main__":
    update_and_compile()
