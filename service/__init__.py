"""replyd: email replies in, blog comments and notification mail out."""
