from email import message_from_bytes, message_from_string, policy
from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from mailflow.inbound.text import body_text, decode_bytes, html_to_text

# -- html_to_text --------------------------------------------------------------------------


def test_block_elements_become_lines() -> None:
    html = "<div>first</div><div>second</div><h1>Title</h1><table><tr><td>a</td><td>b</td></tr>"
    assert html_to_text(html) == "first\nsecond\nTitle\na b"


def test_br_is_a_newline_and_empty_div_br_a_blank_line() -> None:
    assert html_to_text("<div>one<br>two</div><div><br></div><div>three</div>") == (
        "one\ntwo\n\nthree"
    )


def test_paragraphs_are_separated_by_one_blank_line() -> None:
    assert html_to_text("<p>para one</p><p>para two</p>") == "para one\n\npara two"


def test_outlook_paragraphs_keep_outlook_spacing() -> None:
    html = (
        '<p class="MsoNormal">Hi,<o:p></o:p></p><p class="MsoNormal"><o:p>&nbsp;</o:p></p>'
        '<p class="MsoNormal">Line one<o:p></o:p></p><p class="MsoNormal">Line two</p>'
    )
    assert html_to_text(html) == "Hi,\n\nLine one\nLine two"


def test_blockquote_lines_are_prefixed_per_level() -> None:
    html = "<div>reply</div><blockquote>quoted<br>two<blockquote>deeper</blockquote></blockquote>"
    assert html_to_text(html) == "reply\n> quoted\n> two\n> > deeper"


def test_head_style_and_script_are_dropped() -> None:
    html = (
        "<html><head><title>T</title><style>p {color: red}</style></head>"
        "<body><script>alert(1)</script><p>visible</p></body></html>"
    )
    assert html_to_text(html) == "visible"


def test_unclosed_head_ends_at_body() -> None:
    assert html_to_text("<html><head><title>x</title><body>text</body>") == "text"


def test_entities_are_unescaped_and_whitespace_collapsed() -> None:
    html = "<p>Fish &amp; chips&nbsp;&pound;5 &lt;cheap&gt;\n   and\t&#8211; good</p>"
    assert html_to_text(html) == "Fish & chips £5 <cheap> and – good"


def test_blank_runs_collapse_to_one() -> None:
    html = "<div>a</div>" + "<div><br></div>" * 5 + "<div>b</div>"
    assert html_to_text(html) == "a\n\nb"


def test_lists_get_bullets_and_numbers() -> None:
    html = "<ul><li>milk</li><li>eggs</li></ul><ol><li>first</li><li>second</li></ol>"
    assert html_to_text(html) == "- milk\n- eggs\n1. first\n2. second"


def test_pre_keeps_its_lines() -> None:
    assert html_to_text("<pre>a  b\n  c</pre>") == "a  b\n  c"


def test_horizontal_rule_becomes_outlook_separator() -> None:
    assert html_to_text("<div>note</div><hr><div>From: x</div>") == (
        "note\n" + "_" * 32 + "\nFrom: x"
    )


def test_broken_html_does_not_raise() -> None:
    assert html_to_text("<div><p>unclosed <b>bold <blockquote>q") == "unclosed bold\n> q"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_html_to_text_never_raises(html: str) -> None:
    assert isinstance(html_to_text(html), str)


# -- body_text -------------------------------------------------------------------------------


def _alternative(plain: str, html: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = "x"
    msg.set_content(plain)
    msg.add_alternative(html, subtype="html")
    return msg


def test_prefers_plain_part() -> None:
    msg = _alternative("plain version\n", "<p>html version</p>")
    assert body_text(msg).strip() == "plain version"


def test_falls_back_to_html_when_plain_is_blank() -> None:
    msg = _alternative("\n \n", "<p>html <b>version</b></p>")
    assert body_text(msg) == "html version"


def test_html_only_message_is_converted() -> None:
    msg = EmailMessage()
    msg.set_content("<div>Hello<br>there</div>", subtype="html")
    assert body_text(msg) == "Hello\nthere"


def test_does_not_descend_into_attached_message() -> None:
    inner = EmailMessage()
    inner["Subject"] = "inner"
    inner.set_content("inner secret text\n")
    outer = EmailMessage()
    outer.set_content("outer note\n")
    outer.add_attachment(inner)
    assert body_text(outer).strip() == "outer note"

    lonely = EmailMessage()
    lonely.make_mixed()
    lonely.attach(outer.get_payload()[1])  # only the message/rfc822 part
    assert body_text(lonely) == ""


def test_skips_text_attachments() -> None:
    msg = EmailMessage()
    msg.set_content("the body\n")
    msg.add_attachment("attached,csv,data\n", filename="data.csv")
    assert body_text(msg).strip() == "the body"


def _raw(charset: str, body: bytes, cte: str = "8bit") -> bytes:
    return (
        b"From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=" + charset.encode() + b"\r\n"
        b"Content-Transfer-Encoding: " + cte.encode() + b"\r\n\r\n" + body
    )


def test_declared_charset_is_used() -> None:
    msg = message_from_bytes(_raw("iso-8859-2", b"Dzie\xf1 dobry"), policy=policy.default)
    assert body_text(msg) == "Dzień dobry"


def test_unknown_charset_falls_back_to_utf8() -> None:
    msg = message_from_bytes(_raw("x-made-up", "Café £5".encode()), policy=policy.default)
    assert body_text(msg) == "Café £5"


def test_lying_charset_falls_back_to_single_byte() -> None:
    msg = message_from_bytes(_raw("us-ascii", b"Cost \xa365 \x96 ok"), policy=policy.default)
    assert body_text(msg) == "Cost £65 – ok"


def test_lying_charset_in_quoted_printable() -> None:
    msg = message_from_bytes(
        _raw("utf-8", b"Caf=E9 =A35", cte="quoted-printable"), policy=policy.default
    )
    assert body_text(msg) == "Café £5"


def test_broken_base64_does_not_raise() -> None:
    raw = _raw("utf-8", b"!!!not base64***", cte="base64")
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(body_text(msg), str)


def test_message_parsed_from_str_keeps_unicode() -> None:
    msg = message_from_string(
        "Subject: s\nContent-Type: text/plain; charset=utf-8\n"
        "Content-Transfer-Encoding: 8bit\n\nZażółć gęślą jaźń ☃\n",
        policy=policy.default,
    )
    assert body_text(msg).strip() == "Zażółć gęślą jaźń ☃"


def test_non_text_message_gives_empty_string() -> None:
    msg = EmailMessage()
    msg.set_content(b"\x00\x01", maintype="application", subtype="octet-stream")
    assert body_text(msg) == ""


def test_crlf_newlines_are_normalised() -> None:
    msg = message_from_bytes(_raw("utf-8", b"one\r\ntwo\r\n"), policy=policy.default)
    assert body_text(msg) == "one\ntwo\n"


def test_decode_bytes_chain() -> None:
    assert decode_bytes("é".encode(), "utf-8") == "é"
    assert decode_bytes(b"\xe9", "no-such-charset") == "é"
    assert decode_bytes(b"\x81\x8d", None) == "\x81\x8d"  # undefined in cp1252: latin-1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_body_text_never_raises(data: bytes) -> None:
    msg = message_from_bytes(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + data,
                             policy=policy.default)
    assert isinstance(body_text(msg), str)
    msg = message_from_bytes(_raw("utf-8", data, cte="quoted-printable"), policy=policy.default)
    assert isinstance(body_text(msg), str)
