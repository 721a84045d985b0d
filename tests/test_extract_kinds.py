# ruff: noqa: RUF001
"""Plain-text extraction of the mail issue 22 names: bottom-posting, inline answers, attributions
and separators in many languages, other systems' markers, list footers, "Sent from" sentences
and quoted lines that lost their ">"."""

from __future__ import annotations

import textwrap

import pytest

from service.extraction.extract import extract_body
from service.extraction.footers import is_mobile_footer
from service.extraction.marker import MARKER_TEXT

NOTIFICATION = f"""{MARKER_TEXT}

Ann Author commented on "Shipping replyd":

Could the digest follow the reader's time zone?

Newest first would be easier to skim.

--
Reply to this email to answer Ann Author: what you write above the line at the top
becomes your comment."""
QUOTED_NOTIFICATION = "\n".join(f"> {line}".rstrip() for line in NOTIFICATION.split("\n"))
ATTRIBUTION = "On Tue, Mar 12, 2024 at 9:41 AM Example Blog <reply+abc@replies.example.org> wrote:"


def reply_of(body: str) -> str:
    """The reply extracted from a dedented plain-text body."""
    return extract_body(textwrap.dedent(body).lstrip("\n")).reply


class TestBottomPosting:
    def test_reply_below_quoted_notification(self) -> None:
        """Text typed below the quoted notification (marker and all) is the reply."""
        body = f"{ATTRIBUTION}\n{QUOTED_NOTIFICATION}\n\nYes, the reader's zone please.\n\nBob\n"
        assert extract_body(body).reply == "Yes, the reader's zone please.\n\nBob"

    def test_top_posted_reply_still_cut_at_quoted_marker(self) -> None:
        """With nothing below the quote, the quoted marker still cuts as before."""
        body = f"Yes please.\n\n{ATTRIBUTION}\n{QUOTED_NOTIFICATION}\n"
        assert extract_body(body).reply == "Yes please."

    def test_footer_below_quote_is_not_a_reply(self) -> None:
        """A phone footer under the quote does not make the quote a bottom-posted reply."""
        body = f"Yes please.\n\n{ATTRIBUTION}\n{QUOTED_NOTIFICATION}\n\nSent from my iPhone\n"
        assert extract_body(body).reply == "Yes please."

    def test_reply_below_an_ordinary_quote(self) -> None:
        """Bottom-posting to any quoted mail keeps only what is below the quote."""
        body = f"{ATTRIBUTION}\n> What do you think?\n> Two lines.\n\nI think it is fine.\n"
        assert extract_body(body).reply == "I think it is fine."


class TestInlineAnswers:
    def test_answers_keep_the_quoted_lines_they_answer(self) -> None:
        """Each answer keeps the quote above it; marker, heading, attribution and the rest go."""
        body = f"""{ATTRIBUTION}
> {MARKER_TEXT}
>
> Ann Author commented on "Shipping replyd":
>
> Could the digest follow the reader's time zone?

Yes.

> Newest first would be easier to skim.

Agreed.

> --
> Reply to this email to answer Ann Author: what you write above the line
"""
        assert extract_body(body).reply == (
            "> Could the digest follow the reader's time zone?\n\nYes.\n\n"
            "> Newest first would be easier to skim.\n\nAgreed."
        )

    def test_first_answered_quote_kept_without_text_above(self) -> None:
        """Two answered quotes are inline answers even when the message opens with the quote."""
        body = f"{ATTRIBUTION}\n> First?\n\nOne.\n\n> Second?\n\nTwo.\n"
        assert extract_body(body).reply == "> First?\n\nOne.\n\n> Second?\n\nTwo."

    def test_greeting_then_inline_answer(self) -> None:
        """A greeting above the attribution makes the one answered quote an inline answer."""
        body = f"Hi Ann,\n\n{ATTRIBUTION}\n> First?\n\nOne.\n\n> rest\n> of\n> quote\n"
        assert extract_body(body).reply == "Hi Ann,\n\n> First?\n\nOne."


@pytest.mark.parametrize(
    "attribution",
    [
        # Gmail
        "ti 12. maalisk. 2024 klo 9.41 Ann Author <ann@example.org> kirjoitti:",
        "wt., 12 mar 2024 o 09:41 Ann Author <ann@example.org> napisał(a):",
        "út 12. 3. 2024 v 9:41 odesílatel Ann Author <ann@example.org> napsal:",
        "Ann Author <ann@example.org>, 12 Mar 2024 Sal, 09:41 tarihinde şunu yazdı:",
        "2024년 3월 12일 (화) 오전 9:41, Ann Author <ann@example.org>님이 작성:",
        "El dt., 12 de març 2024 a les 9:41, Ann Author (<ann@example.org>) va escriure:",
        "Pe mar., 12 mar. 2024 la 09:41, Ann Author <ann@example.org> a scris:",
        "Ann Author <ann@example.org> ezt írta (időpont: 2024. márc. 12., K, 9:41):",
        "Στις Τρί 12 Μαρ 2024 στις 9:41 π.μ., ο/η Ann Author <ann@example.org> έγραψε:",
        "في الثلاثاء، 12 مارس 2024 في 9:41 ص، Ann Author <ann@example.org> كتب:",
        "בתאריך יום ג׳, 12 במרץ 2024 ב-9:41 מאת Ann Author <ann@example.org>:",
        "मंगल, 12 मार्च 2024 को 9:41 am पर Ann Author <ann@example.org> ने लिखा:",
        "Vào Th 3, 12 thg 3, 2024 vào lúc 09:41 Ann Author <ann@example.org> đã viết:",
        "Pada tanggal Sel, 12 Mar 2024 pukul 09.41 Ann Author <ann@example.org> menulis:",
        "Ann Author <ann@example.org> 於 2024年3月12日 週二 上午9:41寫道：",
        # Apple Mail
        "Op 12 mrt. 2024 om 09:41 heeft Ann Author <ann@example.org> het volgende geschreven:",
        "2024/03/12 9:41、Ann Author <ann@example.org>のメール:",
        "12 марта 2024 г., в 09:41, Ann Author <ann@example.org> написал(а):",
        # Thunderbird
        "W dniu 12.03.2024 o 09:41, Ann Author pisze:",
        "12.03.2024 09:41, Ann Author пишет:",
        "2024. 03. 12. 9:41 keltezéssel, Ann Author írta:",
        "Dne 12. 03. 24 v 9:41 Ann Author napsal(a):",
        "2024-03-12 오전 9:41에 Ann Author 이(가) 쓴 글:",
        # Yahoo, Zoho
        "Am Dienstag, 12. März 2024, 09:41:23 MEZ hat Ann Author <ann@example.org> Folgendes "
        "geschrieben:",
        "---- On Tue, 12 Mar 2024 09:41:00 +0100 Ann Author <ann@example.org> wrote ----",
    ],
)
def test_attribution_in_many_languages(attribution: str) -> None:
    """Top-posted text above each client's attribution is the reply."""
    body = f"Sounds right.\n\n{attribution}\n\n> Earlier message\n> second line\n"
    assert extract_body(body).reply == "Sounds right."


def test_wrapped_finnish_attribution_without_bracketed_head() -> None:
    """A Gmail attribution wrapped before the address is found from its weekday opener."""
    body = (
        "Kiitos!\n\nti 12. maalisk. 2024 klo 9.41 Ann Author\n<ann@example.org> kirjoitti:\n\n> q\n"
    )
    assert extract_body(body).reply == "Kiitos!"


@pytest.mark.parametrize(
    "separator",
    [
        "-----Ursprüngliche Nachricht-----",
        "-------- Mensaje original --------",
        "-----Původní zpráva-----",
        "-----Oryginalna wiadomość-----",
        "-----Исходное сообщение-----",
        "-----Αρχικό μήνυμα-----",
        "-----元のメッセージ-----",
        "------------------ 原始邮件 ------------------",
        "-----원본 메시지-----",
        "-----Mesaj original-----",
        "-----Missatge original-----",
        "===== Original Message =====",
        "========== Alkuperäinen viesti ==========",
        "----- Message from Ann Author <ann@example.org> ---------",
        "----- Nachricht von ann@example.org ---------",
    ],
)
def test_original_message_separators(separator: str) -> None:
    """Dash- and equals-framed "original message" rules cut, in every language."""
    body = f"Fine by me.\n\n{separator}\nThe old message, not quoted.\n"
    assert extract_body(body).reply == "Fine by me."


@pytest.mark.parametrize(
    "block",
    [
        "Gesendet: Dienstag, 12. März 2024 um 09:41 Uhr\nVon: Ann <ann@example.org>\nAn: bob@x",
        "Od: Ann <ann@example.org>\nWysłano: wtorek, 12 marca 2024 09:41\nDo: bob@x",
        "От: Ann <ann@example.org>\nОтправлено: 12 марта 2024 г. 9:41\nКому: bob@x",
        "差出人: Ann <ann@example.org>\n送信日時: 2024年3月12日 9:41\n宛先: bob@x",
        "보낸 사람: Ann <ann@example.org>\n보낸 날짜: 2024년 3월 12일 오전 9:41\n받는 사람: bob@x",
        "De la: Ann <ann@example.org>\nTrimis: marți, 12 martie 2024 09:41\nCătre: bob@x",
        "Kimden: Ann <ann@example.org>\nGönderildi: 12 Mart 2024 Salı 09:41\nKime: bob@x",
        "Från: Ann <ann@example.org>\nSkickat: den 12 mars 2024 09:41\nTill: bob@x",
        "Lähettäjä: Ann <ann@example.org>\nLähetetty: tiistai 12. maaliskuuta 2024 9.41\nAihe: x",
    ],
)
def test_localized_header_blocks(block: str) -> None:
    """Outlook, GMX and Samsung header blocks start the quote in their languages."""
    body = f"Fine by me.\n\n{block}\nSubject: x\n\nThe old message.\n"
    assert extract_body(body).reply == "Fine by me."


class TestOtherMarkers:
    @pytest.mark.parametrize(
        "marker",
        [
            "##- Please type your reply above this line -##",
            "-- Reply above this line --",
            "— Reply ABOVE THIS LINE to post a comment —",
            "##- Bitte geben Sie Ihre Antwort über dieser Zeile ein. -##",
            "##- Veuillez écrire votre réponse au-dessus de cette ligne. -##",
            "##- Escriba su respuesta encima de esta línea. -##",
            "## Please do not write below this line ##",
        ],
    )
    def test_other_markers_cut(self, marker: str) -> None:
        """A helpdesk's or forum's reply-above line cuts like our own marker."""
        body = f"Done, thanks.\n\n{marker}\n\nYour request (#123) has been updated.\n"
        assert extract_body(body).reply == "Done, thanks."

    def test_prose_about_a_line_is_kept(self) -> None:
        """A sentence that mentions a line without asking for a reply is not a marker."""
        body = "The chart has a red mark above this line of text.\n\nAnd more below it."
        assert extract_body(body).reply == body


class TestListFooters:
    @pytest.mark.parametrize(
        "footer",
        [
            "_______________________________________________\nfoo mailing list\n"
            "foo@lists.example.org\nhttps://lists.example.org/mailman/listinfo/foo",
            "_______________________________________________\nfoo mailing list -- "
            "foo@lists.example.org\nTo unsubscribe send an email to foo-leave@lists.example.org",
            "-- \nYou received this message because you are subscribed to the Google Groups "
            '"foo" group.\nTo unsubscribe from this group, send an email to foo@x.example.',
            "-=-=-=-=-=-=-=-=-=-=-=-\nGroups.io Links: You receive all messages sent to this group."
            "\nView/Reply Online (#12): https://groups.io/g/foo/message/12\n-=-=-=-=-=-=-=-=-=-=-=-",
            "—\nReply to this email directly, view it on GitHub, or unsubscribe.\n"
            "You are receiving this because you were mentioned.",
        ],
    )
    def test_list_footer_is_cut(self, footer: str) -> None:
        """Footers mailing lists and groups add below the reply are not the reply."""
        assert extract_body(f"Good idea.\n\nPat\n{footer}\n").reply == "Good idea.\n\nPat"


class TestSentFrom:
    @pytest.mark.parametrize(
        "footer",
        [
            "Sent from my iPhone",
            "Sent from my Samsung Galaxy smartphone.",
            "Sent with Proton Mail secure email.",
            "Sent from Mail for Windows",
            "Sent from my mobile device, please excuse typos",
            "Sent via the Samsung Galaxy S21 5G, an AT&T 5G smartphone",
            "Sent from Outlook Mobile<https://aka.ms/x>",
            "Get Outlook for Android",
            "Von meinem iPhone gesendet",
            "Enviado desde mi Galaxy",
            "Wysłano z iPhone'a",
            "Отправлено с iPhone",
            "iPhoneから送信",
            "iPhone에서 보냄",
            "Στάλθηκε από το iPhone μου",
        ],
    )
    def test_device_footers(self, footer: str) -> None:
        """What phones and apps add is a footer, and is cut."""
        assert is_mobile_footer(footer)
        assert extract_body(f"Fine by me.\n\n{footer}\n").reply == "Fine by me."

    @pytest.mark.parametrize(
        "sentence",
        [
            "Sent from my phone on the train, so I haven't tried it, but it sounds right.",
            "Sent by post yesterday, should arrive Friday.",
            "Sent from my iPhone but I mean it.",
        ],
    )
    def test_sentences_are_kept(self, sentence: str) -> None:
        """A real sentence that starts like a footer is what the person wrote."""
        assert not is_mobile_footer(sentence)
        assert extract_body(f"{sentence}\n").reply == sentence


class TestLostQuoteMarks:
    def test_rewrapped_tail_inside_quote(self) -> None:
        """A long quoted line's tail without ">" between quoted lines is part of the quote."""
        body = (
            f"{ATTRIBUTION}\n> The digest arrives on Mondays at 3 AM, which is a little early\n"
            "for my taste.\n> Could it follow the reader's time zone?\n\nYes.\n"
        )
        assert extract_body(body).reply == "Yes."

    def test_rewrapped_tail_in_inline_answer(self) -> None:
        """A lost tail that goes on in lower case is quoted again in the kept answer."""
        body = (
            f"{ATTRIBUTION}\n> The digest arrives on Mondays at 3 AM, which is a little early\n"
            "for my taste.\n\nAgreed.\n\n> And newest first would be easier to skim?\n\nYes.\n"
        )
        assert extract_body(body).reply == (
            "> The digest arrives on Mondays at 3 AM, which is a little early\n"
            "> for my taste.\n\nAgreed.\n\n> And newest first would be easier to skim?\n\nYes."
        )

    def test_answer_right_below_a_question_is_kept(self) -> None:
        """An answer typed right under a whole quoted sentence is not taken into the quote."""
        body = (
            "> Could the digest follow the reader's time zone, as other services do?\n"
            "Yes, I think so.\n> Newest first?\nNo.\n"
        )
        assert "Yes, I think so." in extract_body(body).reply
