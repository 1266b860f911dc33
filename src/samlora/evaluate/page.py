"""``report.html``: one self-contained page (inline CSS and images, no script, nothing fetched).

The page is the report's markdown (header with the prompt and settings, every table) rendered to
HTML, then the figures and the panels, each image inlined as a ``data:`` URI. Promptable and
concept reports share it.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1.5em; color: #1d1d1f; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: .8em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #f3f3f5; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f3f3f5; padding: 0 3px; border-radius: 3px; }
strong { color: #b00020; }
figure { margin: 1em 0; }
figcaption { font-size: 13px; color: #555; }
img { max-width: 100%; border: 1px solid #e3e3e3; }
.panels figure { display: block; }
"""


def _inline(text: str) -> str:
    """Escape, then render ``code`` and **bold** spans."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_html(text: str) -> str:
    """HTML of the markdown samlora writes: ``#`` headings, ``|`` tables, ``-`` lists (two-space
    nesting), fenced code and paragraphs."""
    parts: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            parts.append(f"<pre>{html.escape(chr(10).join(lines[i + 1 : j]))}</pre>")
            i = j + 1
        elif line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 6)
            parts.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
            i += 1
        elif line.lstrip().startswith("|"):
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(lines[i])
                i += 1
            body = [r for r in rows[1:] if not set(r.replace("|", "").strip()) <= set("-: ")]
            head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(rows[0]))
            cells = ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(r)) + "</tr>" for r in body]
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(cells)}</tbody></table>")
        elif line.lstrip().startswith("- "):
            items = []
            while i < len(lines) and lines[i].lstrip().startswith("- "):
                nested = lines[i].startswith("  ")
                indent = ' style="margin-left:1.5em"' if nested else ""
                items.append(f"<li{indent}>{_inline(lines[i].lstrip()[2:])}</li>")
                i += 1
            parts.append(f"<ul>{''.join(items)}</ul>")
        else:
            para = []
            while (
                i < len(lines)
                and lines[i].strip()
                and not lines[i].lstrip().startswith(("|", "#", "- ", "```"))
            ):
                para.append(lines[i].strip())
                i += 1
            parts.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(parts)


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def panel_uri(path: Path, quality: int = 85) -> str:
    """A panel PNG re-encoded as JPEG for the page (a fraction of the size; the PNG stays on disk)."""
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="JPEG", quality=quality)
    return data_uri(buffer.getvalue(), "image/jpeg")


def write_html(
    out: Path,
    title: str,
    markdown: str,
    figures: Sequence[tuple[str, bytes]] = (),
    panels: Sequence[tuple[str, Sequence[tuple[str, Path]]]] = (),
    figures_before: str | None = None,
) -> Path:
    """Write ``out/report.html``.

    Args:
        markdown: the report's markdown (its first ``#`` line is replaced by ``title``).
        figures: ``(caption, PNG bytes)``, shown before the markdown heading ``figures_before``
            (e.g. ``"## iou"``: after the main tables) or after all of it.
        panels: ``(section heading, [(caption, panel file)])`` shown last.
    """
    lines = [line for line in markdown.splitlines() if not line.startswith("# ")]
    cut = lines.index(figures_before) if figures_before in lines else len(lines)
    figure_html = ["<h2>Figures</h2>"] if figures else []
    for caption, png in figures:
        figure_html.append(
            f'<figure><img alt="{html.escape(caption)}" src="{data_uri(png)}">'
            f"<figcaption>{_inline(caption)}</figcaption></figure>"
        )
    parts = [f"<h1>{html.escape(title)}</h1>", markdown_html("\n".join(lines[:cut])), *figure_html]
    parts.append(markdown_html("\n".join(lines[cut:])))
    if panels:
        heading = (
            "" if "## Panels" in lines else "<h2>Panels</h2>"
        )  # the markdown's own section ends the page
        parts.append(f'{heading}<div class="panels">')
        for heading, files in panels:
            parts.append(f"<h3>{_inline(heading)}</h3>")
            for caption, path in files:
                parts.append(
                    f'<figure><img alt="{html.escape(caption)}" src="{panel_uri(path)}">'
                    f"<figcaption>{_inline(caption)}</figcaption></figure>"
                )
        parts.append("</div>")
    page = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
