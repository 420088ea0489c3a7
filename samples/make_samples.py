"""Regenerate the samples that are binary or not UTF-8, byte for byte.

Why a script: an XLSX, a Windows-1252 file, a UTF-16 file and a file of undecodable bytes cannot
be reviewed or edited as text, so their content lives here, readable, and the outputs are
committed beside it. Running it twice gives identical bytes (fixed XLSX timestamps and zip
dates), so ``git status`` shows a change only when this script changed.

All users fit ``samples/org.yaml`` (org ``acme``): the numbers are free numbers of its
inventory and the extensions are free in their location, so each file is also valid with
``--org acme`` in add-only mode (except the intended ``number_mangled`` in users.xlsx).

    python samples/make_samples.py
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from pathlib import Path

from openpyxl import Workbook

HERE = Path(__file__).resolve().parent
FIXED = dt.datetime(2024, 1, 1, 0, 0, 0)


def users_xlsx(path: Path) -> None:
    """A hidden first sheet (must be skipped), then the visible "Users" sheet.

    Extension is stored as number cells (1001 reads as "1001"), one as the text "0042" (the
    leading zeros kept), and Lena's Phone Number as a number cell: ``number_mangled``.
    """
    wb = Workbook()
    notes = wb.active
    assert notes is not None
    notes.title = "Hinweise"
    notes.append(["Diese Tabelle nicht hochladen: Entwurf"])
    notes.append(["Vorname", "Nachname"])
    notes.sheet_state = "hidden"
    ws = wb.create_sheet("Users")
    ws.append(
        [
            "First Name",
            "Last Name",
            "User ID/Email (Required)",
            "Extension",
            "Phone Number",
            "Location",
            "Jabber Calling",
            "Jabber with Webex Teams",
            "Preferred Webex Site",
            "Webex Calling",
            "Webex Suite",
        ]
    )
    ws.append(
        ["Hedda", "Brandt", "hedda.brandt@acme.example", 1010, "+4940123407", "HQ",
         True, True, "acme.webex.com", True, False]
    )  # fmt: skip
    ws.append(
        ["Jonas", "Ødegård", "jonas.oedegaard@acme.example", "0042", "+4930123406", "Berlin",
         True, False, "acme.webex.com", True, False]
    )  # fmt: skip
    ws.append(
        ["Lotte", "Kjær", "lotte.kjaer@acme.example", 1011, 447700900123, "HQ",
         True, True, "acme.webex.com", False, True]
    )  # fmt: skip
    ws.cell(row=4, column=4).number_format = "0"
    ws.cell(row=4, column=5).number_format = "0"
    wb.properties.created = FIXED
    wb.properties.modified = FIXED
    wb.properties.creator = "csvimport samples"
    buffer = io.BytesIO()
    wb.save(buffer)
    path.write_bytes(_stable_zip(buffer.getvalue()))


def _stable_zip(data: bytes) -> bytes:
    """Rewrite a zip with fixed entry dates and modified time (openpyxl stamps "now")."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2024, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl stamps "modified" on save
                content = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2024-01-01T00:00:00Z", content
                )
            dst.writestr(fixed, content)
    return out.getvalue()


def german_excel_csv(path: Path) -> None:
    """What German Excel writes for "CSV (Trennzeichen-getrennt)": Windows-1252, ``;``, CRLF,
    German headers (aliases of schemas/users.yaml) and WAHR/FALSCH."""
    rows = [
        "Vorname;Nachname;Benutzer-ID/E-Mail (erforderlich);Durchwahl;Telefonnummer;Standort;"
        "Titel;Abteilung;Jabber-Anrufe;Jabber mit Webex Teams;Bevorzugte Webex-Site;"
        "Webex Calling;Webex Suite;Grundlegende Nachrichten",
        "Jürgen;Weiß;juergen.weiss@acme.example;1012;+4940123408;HQ;Einkäufer;Einkauf;"
        "WAHR;FALSCH;acme.webex.com;WAHR;FALSCH;WAHR",
        "Dörte;Großmann;doerte.grossmann@acme.example;2006;+4930123407;Berlin;Prüferin;"
        "Qualitätssicherung;WAHR;WAHR;acme.webex.com;FALSCH;WAHR;WAHR",
        "Søren;Ærø;soeren.aeroe@acme.example;1013;;HQ;Berater;Vertrieb;"
        "FALSCH;FALSCH;acme.webex.com;WAHR;FALSCH;FALSCH",
    ]
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode("cp1252"))


def utf16_txt(path: Path) -> None:
    """Excel's "Unicode text": UTF-16 LE with a BOM, tab separated, CRLF."""
    rows = [
        [
            "First Name",
            "Last Name",
            "User ID/Email (Required)",
            "Extension",
            "Phone Number",
            "Location",
            "Jabber Calling",
            "Jabber with Webex Teams",
            "Preferred Webex Site",
            "Webex Calling",
        ],
        ["Åsmund", "Bjørnstad", "aasmund.bjoernstad@acme.example", "2007", "+4930123408",
         "Berlin", "TRUE", "TRUE", "acme.webex.com", "TRUE"],
        ["Kjersti", "Sæther", "kjersti.saether@acme.example", "1014", "+4940123409",
         "HQ", "TRUE", "FALSE", "acme.webex.com", "TRUE"],
    ]  # fmt: skip
    text = "\r\n".join("\t".join(r) for r in rows) + "\r\n"
    path.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))


def unreadable_csv(path: Path) -> None:
    """Not UTF-8 (a lone 0x81), and not Windows-1252 either: 0x81, 0x8D, 0x8F, 0x90 and 0x9D
    are undefined there. No BOM, so not UTF-16: no supported codec decodes it."""
    body = b"First Name,Last Name,User ID/Email (Required)\r\nAnna,Berg\x81\x8d\x8f\x90\x9d,"
    path.write_bytes(body + b"anna.berg@acme.example\r\n")


def main() -> None:
    users_xlsx(HERE / "users.xlsx")
    german_excel_csv(HERE / "german_excel.csv")
    utf16_txt(HERE / "utf16.txt")
    unreadable_csv(HERE / "errors" / "unreadable.csv")


if __name__ == "__main__":
    main()
