"""The "reply above this line" marker our notifications carry (templates and extraction)."""

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
