"""The built book as a reader's browser shows it: every page opened in headless
Chromium at a given width, and what a reader should never see, found and named.

    python -m l2a_lib check-book                      # book/_build/html at 1280 px
    python -m l2a_lib check-book --screenshots shots  # and a full-page PNG of each page

A page fails on: a code cell whose source is visible (code belongs behind the "show
code" toggle), an error or warning stream shown as output, a table wider than the
article, "NaN" or a cell cut short with "…", Python traceback or warning text, an
image that did not load, or a link to a page or file of the book that does not exist.

The browser is the system's Chromium (the Debian package ``chromium``) driven by
Playwright (``pip install playwright``; no browser download: ``executable_path``).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

from .errors import BookCheckUnavailable

# what the page's script reports (run in the page, after it has loaded)
PAGE_SCRIPT = r"""
() => {
  const article = document.querySelector('article') || document.body;
  const box = article.getBoundingClientRect();
  const visible = el => !el.closest('details:not([open])') && el.getClientRects().length > 0
      && el.getBoundingClientRect().height > 0;
  const out = {codeCells: 0, stderr: 0, missing: 0, wideTables: [], truncated: [], brokenImages: [],
               links: [], text: article.innerText, articleWidth: box.width,
               outputText: [...article.querySelectorAll('div.cell_output pre')].map(o => o.innerText).join('\n')};
  article.querySelectorAll('div.cell_input, div.cell .input_area').forEach(el => {
    if (visible(el)) out.codeCells += 1; });
  article.querySelectorAll('div.output.stderr, div.cell_output .stderr').forEach(el => {
    if (visible(el)) out.stderr += 1; });
  article.querySelectorAll('table').forEach((t, i) => {
    const r = t.getBoundingClientRect();
    if (r.width > box.width + 1 || r.right > box.right + 1) {
      const head = (t.querySelector('tr') || t).innerText.replace(/\s+/g, ' ').slice(0, 60);
      out.wideTables.push(`table ${i + 1} (${Math.round(r.width)} px > ${Math.round(box.width)} px): ${head}`);
    }
    t.querySelectorAll('td, th').forEach(c => {
      const s = c.innerText.trim();
      // pandas cuts a long cell to max_colwidth (50) characters ending in "..."
      if (s.endsWith('…') || (s.endsWith('...') && s.length === 50)) out.truncated.push(s.slice(-40));
      if (/^(NaN|nan|None|<NA>)$/.test(s)) out.missing += 1;
    });
  });
  document.querySelectorAll('img').forEach(img => {
    if (!img.complete || img.naturalWidth === 0) out.brokenImages.push(img.getAttribute('src'));
  });
  article.querySelectorAll('a[href]').forEach(a => out.links.push(a.getAttribute('href')));
  return out;
}
"""
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|\b[A-Z]\w*Warning: ")
NAN = re.compile(r"\bNaN\b")  # in printed output (prose and tables may speak of a NaN loss)


def chromium() -> str:
    """The system Chromium, or a clear error naming the package to install."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise BookCheckUnavailable("no Chromium on this machine: install the Debian package "
                               "(`apt-get install chromium`) to check the built book")


def problems_of(report: dict, page: Path, html_dir: Path) -> list[str]:
    """The problems in one page's ``PAGE_SCRIPT`` report, as sentences."""
    out = []
    if report["codeCells"]:
        out.append(f"{report['codeCells']} code cell(s) with their source visible")
    if report["stderr"]:
        out.append(f"{report['stderr']} error/warning output stream(s) shown")
    out += [f"too wide: {t}" for t in report["wideTables"]]
    out += [f"cell cut short: {t!r}" for t in report["truncated"][:5]]
    if report["missing"]:
        out.append(f"{report['missing']} table cell(s) reading NaN / None")
    for pattern, text in ((TRACEBACK, report["text"]), (NAN, report["outputText"])):
        for m in pattern.finditer(text):
            start = max(0, m.start() - 40)
            out.append(f"{m.group(0).strip()!r} in the text: ...{text[start:m.end() + 40]!r}")
    out += [f"image did not load: {src}" for src in report["brokenImages"]]
    for href in report["links"]:
        target = urlparse(href)
        if target.scheme or href.startswith(("#", "mailto:")):
            continue  # a web link (not checkable offline) or an anchor on this page
        path = (page.parent / unquote(target.path)).resolve()
        if not path.exists():
            out.append(f"broken link: {href}")
        elif not path.is_relative_to(html_dir.resolve()):
            out.append(f"link leaves the book: {href}")
    return out


def check_book(html_dir, width: int = 1280, screenshots=None, pages=None) -> dict[str, list[str]]:
    """{page: problems} for every HTML page of the built book (``pages``: file names,
    default all but Sphinx's own search and index pages)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:  # the dev extra installs it
        raise BookCheckUnavailable("Playwright is not installed: pip install playwright") from e
    html_dir = Path(html_dir)
    if not (html_dir / "index.html").is_file():
        raise BookCheckUnavailable(f"no built book in {html_dir}: run `make book` first")
    files = sorted(html_dir / p for p in pages) if pages else sorted(
        p for p in html_dir.glob("*.html") if p.name not in ("search.html", "genindex.html"))
    if screenshots:
        Path(screenshots).mkdir(parents=True, exist_ok=True)
    found = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(),
                                     args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": width, "height": 900})
        for f in files:
            page.goto(f.resolve().as_uri(), wait_until="load")
            page.wait_for_timeout(200)  # the theme lays the page out after load
            found[f.name] = problems_of(page.evaluate(PAGE_SCRIPT), f, html_dir)
            if screenshots:
                page.screenshot(path=str(Path(screenshots) / f"{f.stem}.png"), full_page=True)
        browser.close()
    return found
