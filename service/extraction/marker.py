"""The "reply above this line" markers: the one our notifications carry, and other systems'."""

import re

# Plain-text line placed above the quoted notification body, per language of our templates.
# A reply that quotes one of our notifications is cut at this line, whatever the client did
# to the lines around it.
MARKERS = {
    "en": "##- Reply above this line to comment -##",
    "de": "##- Antworten Sie oberhalb dieser Zeile -##",
    "fr": "##- Répondez au-dessus de cette ligne -##",
    "es": "##- Responda encima de esta línea -##",
}
MARKER_TEXT = MARKERS["en"]

# Every form is recognised when cutting: a deployment may have changed language since.
MARKER_TEXTS = tuple(MARKERS.values())

# id of the invisible element at the top of the HTML part; clients keep it inside the quote.
MARKER_HTML_ID = "replyd-reply-above"

# Other systems' markers (helpdesks, forums, project tools): "##- Please type your reply above
# this line -##", "-- Reply above this line --", and translations. Only a short line that
# names replying or typing counts, so prose that mentions "this line" stays.
_OTHER_MARKER = re.compile(
    r"(?:above\s+this\s+line|(?:über|oberhalb)\s+dieser\s+zeile|au-dessus\s+de\s+cette\s+ligne"
    r"|(?:por\s+)?encima\s+de\s+esta\s+l[ií]nea|acima\s+desta\s+linha"
    r"|sopra\s+questa\s+(?:riga|linea)|boven\s+deze\s+(?:regel|lijn)"
    r"|ovanför\s+(?:denna|den\s+här)\s+(?:rad|linje)|over\s+denne\s+linje(?:n)?"
    r"|powyżej\s+tej\s+linii|над\s+этой\s+(?:строкой|линией)|tämän\s+rivin\s+yläpuolelle"
    r"|bu\s+satırın\s+üstüne|nad\s+tímto\s+řádkem|(?:do\s+not|don't)\s+\w+\s+below\s+this\s+line"  # noqa: RUF001
    r"|この行より上|在此行上方|이\s?줄\s?위에)",
    re.IGNORECASE,
)
_REPLY_WORDS = re.compile(
    r"reply|respond|type|write|answer|antwort|répon|respon|escrib|rispond|scriv|antwoord|svar"
    r"|odpowied|ответ|vastaa|yanıt|odpověz|返信|回复|답장|wpisz|schreiben|écri",  # noqa: RUF001
    re.IGNORECASE,
)
_OTHER_MARKER_MAX_CHARS = 160


# Every marker names the line, in its language; a line naming none is skipped at once.
_LINE_WORDS = (
    "line", "zeile", "ligne", "nea", "linha", "riga", "regel", "lijn", "rad", "linje", "linii",
    "строк", "лини", "rivin", "satır", "řádk", "行", "줄",  # noqa: RUF001
)  # fmt: skip


def is_other_marker(line: str) -> bool:
    """Whether a line is another system's "reply above this line" marker."""
    text = line.lstrip("> \t").strip()
    if len(text) > _OTHER_MARKER_MAX_CHARS:
        return False
    lowered = text.lower()
    return (
        any(word in lowered for word in _LINE_WORDS)
        and _OTHER_MARKER.search(text) is not None
        and _REPLY_WORDS.search(text) is not None
    )
