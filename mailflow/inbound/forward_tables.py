"""The words mail clients print around a forward, per language: header labels, separator
lines, "wrote" attributions, subject prefixes and month names.

Languages: English, Welsh, Scottish Gaelic, French, German, Dutch, Spanish, Portuguese (PT
and BR), Italian, Polish, Czech, Slovak, Hungarian, Romanian, Croatian, Danish, Norwegian,
Swedish, Finnish, Estonian, Turkish, Russian, Ukrainian and Japanese, as printed by Outlook
(desktop, new, web, mobile), Gmail, Apple Mail, Thunderbird, Yahoo, HubSpot, Mail.ru and
Yandex. Everything is lower-case; matching ignores case.
"""

from __future__ import annotations

# Label -> canonical field ("other" is a header line we skip).
LABELS: dict[str, list[str]] = {
    "from": [
        "from", "von", "de", "od", "oddi wrth", "gan", "bho", "nadawca", "expéditeur", "van",
        "da", "remitente", "mittente", "fra", "från", "lähettäjä", "saatja", "feladó",
        "de la", "expeditorul", "šalje", "kimden", "gönderen", "от", "от кого", "отправитель",
        "від", "від кого", "差出人", "送信元", "送信者",
    ],
    "date": [
        "sent", "date", "gesendet", "datum", "envoyé", "envoye", "envoyé le", "enviado",
        "enviada", "enviado el", "enviado em", "enviada em", "fecha", "wysłano", "wyslano",
        "data", "anfonwyd", "dyddiad", "air a chur", "ceann-là", "ceann-latha", "verzonden",
        "inviato", "sent on", "odesláno", "odoslané", "dátum", "elküldve", "küldve", "dată",
        "trimis", "poslano", "sendt", "dato", "skickat", "lähetetty", "päivämäärä", "päiväys",
        "saadetud", "kuupäev", "gönderildi", "gönderilen", "tarih", "отправлено", "дата",
        "надіслано", "відправлено", "送信日時", "日付", "日時",
    ],
    "to": [
        "to", "an", "à", "a", "para", "do", "at", "gu", "pour", "adresat", "aan",
        "destinataire", "komu", "pre", "címzett", "către", "destinatarul", "prima", "til",
        "till", "vastaanottaja", "adressaat", "kime", "кому", "宛先", "送信先",
    ],
    "cc": [
        "cc", "kopie", "kopie (cc)", "dw", "copie à", "copie", "kopia", "kópia", "kopija",
        "másolat", "másolatot kap", "kopi", "kopio", "koopia", "bilgi", "копия", "копія",
    ],
    "subject": [
        "subject", "betreff", "objet", "sujet", "asunto", "assunto", "temat", "pwnc",
        "cuspair", "onderwerp", "oggetto", "předmět", "predmet", "tárgy", "subiect",
        "subiectul", "naslov", "emne", "ämne", "aihe", "teema", "konu", "тема", "件名",
    ],
    "other": [
        "bcc", "reply-to", "reply to", "importance", "priority", "wichtigkeit", "attachments",
        "anlagen", "pièces jointes", "antwort an", "répondre à", "responder a", "svar til",
    ],
}

# Words that make a dashed line a forward separator.
# Separator words that say "forwarded": under a reply subject ("RE:") such a separator still
# makes the message a forward.
FORWARDED_WORDS = [
    "forward", "weitergeleitet", "transféré", "transmis", "réexpédié", "reenviado",
    "reencaminhad", "encaminhad", "inoltrat", "przekaza", "przekazyw", "doorgestuurd",
    "přeposla", "přeposílan", "preposla", "továbbított", "redirecționat", "proslijeđen",
    "videresend", "vidarebefordra", "välitetty", "edasi saadetud", "edastatud", "iletil",
    "ileti başlangıcı", "пересыла", "пересила", "переадресован", "перенаправ", "переслан",
    "転送", "ymlaen", "air adhart",
]
# Separator words that say "original message" (Outlook's quoted original: replies use it too).
ORIGINAL_WORDS = [
    "original", "ursprüngliche", "d'origine", "originale", "oryginaln", "oorspronkelijk",
    "původní", "pôvodn", "eredeti", "izvorn", "oprindelig", "opprinnelig", "ursprungligt",
    "alkuperäinen", "algne", "özgün", "orijinal", "исходное", "оригінальне", "元のメッセージ",
    "wreiddiol", "thùsail",
]
SEPARATOR_WORDS = FORWARDED_WORDS + ORIGINAL_WORDS

# Whole lines ending in ":" that introduce a forward (Apple Mail per language, MailMate,
# mobile clients). Exact phrases only: "I have forwarded this to Roads:" is a sentence.
INTRO_LINES = [
    "begin forwarded message", "forwarded message", "start of forwarded message",
    "original message", "dechrau'r neges a anfonwyd ymlaen",
    "toiseach na teachdaireachd a chaidh a shìneadh air adhart", "début du message réexpédié",
    "début du message transféré", "anfang der weitergeleiteten nachricht",
    "begin doorgestuurd bericht", "inicio del mensaje reenviado",
    "início da mensagem reencaminhada", "início da mensagem encaminhada",
    "inizio messaggio inoltrato", "początek przekazywanej wiadomości",
    "začátek přeposílané zprávy", "začiatok preposlanej správy", "továbbított levél kezdete",
    "începe mesajul redirecționat", "započni proslijeđenu poruku",
    "start på videresendt besked", "videresendt melding", "vidarebefordrat mejl",
    "välitetty viesti alkaa", "algus edastatud kirjale", "ileti başlangıcı",
    "начало переадресованного сообщения", "начало пересылаемого сообщения",
    "початок листа, що пересилається", "転送されたメッセージ",
]

# The end of a forward, where a client marks one.
END_WORDS = ["end forwarded message", "end of forwarded message", "конец пересылаемого"]

# Verbs of an attribution line ("On <date>, "Name" <addr> wrote:") and words that stand
# right before the author's name where the name is not quoted.
WROTE_WORDS = [
    "wrote", "schrieb", "a écrit", "escribió", "escreveu", "ha scritto", "geschreven",
    "napisał", "napsal", "napísal", "ezt írta", "a scris", "je napisao", "je napisala",
    "skrev", "kirjoitti", "kirjutas", "şunu yazdı", "написал", "написала", "написав",
    "написала", "のメッセージ", "ysgrifennodd", "sgrìobh", "pisze",
]
NAME_AFTER = [" heeft ", " používateľ ", " időpontban ", " пользователь ", " користувач ",
              " skrev ", " kirjutas ", " ysgrifennodd ", " sgrìobh ", " schrieb "]

# Subject prefixes that say "forwarded" (Outlook and webmail, per language).
FORWARD_PREFIXES = [
    "fwd", "fw", "tr", "wg", "rv", "pd", "ymlaen", "ym", "enc", "doorst", "i", "vs", "vb",
    "vl", "videresend", "i̇lt", "ilt", "redir", "пересл", "転送", "továbbítás", "trimite",
    "přeposlat", "edasi",
]
REPLY_PREFIXES = ["re", "aw", "sv", "odp", "ateb", "res", "antw", "r", "vá", "ynt", "ответ",
                  "відп", "odg", "vs:re"]

# Month names and abbreviations, as written in dates (nominative and genitive).
MONTHS: list[str] = [
    # 1
    "january jan janvier janv januar jänner enero ene styczeń stycznia sty ionawr ion "
    "janeiro jan gennaio gen januari januar leden ledna január januára január január "
    "ianuarie ian siječanj siječnja sij tammikuu tammikuuta tammik jaanuar ocak "
    "январь января янв січень січня січ faoilleach faoilleach",
    # 2
    "february feb février fevrier févr fevr februar febrero lut luty lutego chwefror chwef "
    "fevereiro fev febbraio febbr februari únor února február februára február februarie "
    "veljača veljače velj helmikuu helmikuuta helmik veebruar şubat февраль февраля фев "
    "лютий лютого лют gearran",
    # 3
    "march mar mars märz maerz mär mrz marzo marzec marca mawrth fawrth maw março "
    "maart maa březen března marec marca március márc martie ožujak ožujka ožu marts "
    "maaliskuu maaliskuuta maalisk märts mart март марта березень березня бер màrt",
    # 4
    "april apr avril avr abril abr kwiecień kwietnia kwi ebrill ebr aprile apr duben dubna "
    "apríl apríla április ápr aprilie travanj travnja tra huhtikuu huhtikuuta huhtik "
    "aprill nisan апрель апреля апр квітень квітня кві giblean",
    # 5
    "may mai mayo maj maja fai maio maggio mag mei květen května máj mája május mai "
    "svibanj svibnja svi toukokuu toukokuuta toukok mai mayıs май мая травень травня тра "
    "cèitean",
    # 6
    "june jun juin juni junio czerwiec czerwca cze mehefin fehefin meh junho giugno giu "
    "červen června jún júna június iunie lipanj lipnja lip kesäkuu kesäkuuta kesäk juuni "
    "haziran июнь июня червень червня чер ògmhios",
    # 7
    "july jul juillet juil juli julio lipiec lipca gorffennaf orffennaf gorff julho luglio "
    "lug červenec července júl júla július iulie srpanj srpnja heinäkuu heinäkuuta heinäk "
    "juuli temmuz июль июля липень липня лип iuchar",
    # 8
    "august aug août aout agosto ago sierpień sierpnia sie awst agosto ago augustus srpen "
    "srpna august augusta augusztus aug august kolovoz kolovoza kol elokuu elokuuta elok "
    "august ağustos август августа авг серпень серпня сер lùnastal",
    # 9
    "september sep sept septembre septiembre setiembre wrzesień września wrz medi fedi "
    "setembro set settembre sett září september septembra szeptember szept septembrie "
    "rujan rujna ruj syyskuu syyskuuta syysk september eylül сентябрь сентября сен "
    "вересень вересня вер sultain",
    # 10
    "october oct octobre oktober okt octubre październik października paź hydref hyd "
    "outubro out ottobre ott říjen října október októbra október okt octombrie "
    "lokakuu lokakuuta lokak oktoober ekim октябрь октября окт жовтень "
    "жовтня жов dàmhair",
    # 11
    "november nov novembre noviembre listopad listopada lis tachwedd dachwedd tach "
    "novembro listopad listopadu novembra noiembrie studeni studenoga stu marraskuu "
    "marraskuuta marrask kasım ноябрь ноября ноя листопад листопада samhain",
    # 12
    "december dec décembre déc dezember dez diciembre dic grudzień grudnia gru rhagfyr rhag "
    "dezembro dicembre dic prosinec prosince decembra december decembrie prosinac prosinca "
    "pro joulukuu joulukuuta jouluk detsember aralık декабрь декабря дек грудень грудня "
    "гру dùbhlachd",
]
