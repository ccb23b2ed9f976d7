"""`newsletter i18n`: the chrome strings' gettext catalogues (extract, init, update, compile, check)."""

from __future__ import annotations

import click

from newsletter.cli import Context, display_path, pass_context


@click.group()
def i18n() -> None:
    """Translate the email's and the archive's own words (gettext catalogues).

    The catalogues live in templates/locale/<lang>/LC_MESSAGES/messages.po. After a
    template change: extract, update, translate the new strings, check.

    \b
    Example:
        newsletter i18n extract && newsletter i18n update && newsletter i18n check
    """


@i18n.command()
@pass_context
def extract(ctx: Context) -> None:
    """Collect every chrome string into templates/locale/messages.pot.

    \b
    Example:
        newsletter i18n extract
    """
    from newsletter.mail.locale import extract as extract_strings

    path = extract_strings(ctx.settings.templates_dir, project=ctx.settings.name)
    click.echo(f"wrote {display_path(path)}")


@i18n.command()
@click.argument("language")
@pass_context
def init(ctx: Context, language: str) -> None:
    """Start the catalogue of LANGUAGE (a BCP 47 tag) from messages.pot.

    \b
    Example:
        newsletter i18n init fr
    """
    from newsletter.mail.locale import init as init_catalogue
    from newsletter.text import is_language_tag

    if not is_language_tag(language):
        raise click.UsageError(f"LANGUAGE: expected a language tag like 'fr' or 'pt-BR', got {language!r}")
    path = init_catalogue(ctx.settings.templates_dir, language)
    click.echo(f"wrote {display_path(path)}: translate its msgstr lines, then run `newsletter i18n check`")


@i18n.command()
@pass_context
def update(ctx: Context) -> None:
    """Merge messages.pot into every catalogue: new strings empty, changed ones fuzzy.

    \b
    Example:
        newsletter i18n update
    """
    from newsletter.mail.locale import update as update_catalogues

    for path in update_catalogues(ctx.settings.templates_dir):
        click.echo(f"updated {display_path(path)}")


@i18n.command(name="compile")
@pass_context
def compile_catalogues(ctx: Context) -> None:
    """Write messages.mo next to each catalogue, for other gettext tools.

    Rendering does not need them: it compiles the .po files in memory.

    \b
    Example:
        newsletter i18n compile
    """
    from newsletter.mail.locale import compile_all

    for path in compile_all(ctx.settings.templates_dir):
        click.echo(f"wrote {display_path(path)}")


@i18n.command()
@click.option(
    "--language",
    "languages",
    multiple=True,
    metavar="LANG",
    help="Also check LANG (e.g. a language your readers have). Repeatable.",
)
@pass_context
def check(ctx: Context, languages: tuple[str, ...]) -> None:
    """Fail on missing, untranslated or fuzzy strings in the languages the newsletter uses.

    Checked: the newsletter's language, every issue's language, every translation's,
    every catalogue's, and each --language.

    \b
    Example:
        newsletter i18n check --language de
    """
    from newsletter.content.library import load_library
    from newsletter.mail.locale import check as check_catalogues
    from newsletter.mail.locale import languages as catalogue_languages

    settings = ctx.settings
    library = load_library(settings)
    wanted = {settings.language, *languages, *catalogue_languages(settings.templates_dir)}
    wanted |= {issue.language for issue in library.issues}
    wanted |= {language for _, language in library.translations.issues}
    wanted |= {language for _, language in library.translations.papers}
    problems = check_catalogues(settings.templates_dir, wanted)
    for problem in problems:
        click.echo(f"  FAIL  {problem}")
    if problems:
        raise click.ClickException(f"{len(problems)} catalogue problem(s) in {', '.join(sorted(wanted))}")
    click.echo(f"catalogues complete for {', '.join(sorted(wanted))}")
