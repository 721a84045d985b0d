"""The "reply above this line" marker our notifications carry (templates and extraction)."""

# Plain-text line placed above the quoted notification body. A reply that quotes one of our
# notifications is cut at this line, whatever the client did to the lines around it.
MARKER_TEXT = "##- Reply above this line to comment -##"

# Localized forms recognised when cutting (a template may be rendered in any of these).
MARKER_TEXTS = (
    MARKER_TEXT,
    "##- Antworten Sie oberhalb dieser Zeile -##",
    "##- Répondez au-dessus de cette ligne -##",
    "##- Responda encima de esta línea -##",
)

# id of the invisible element at the top of the HTML part; clients keep it inside the quote.
MARKER_HTML_ID = "replyd-reply-above"
