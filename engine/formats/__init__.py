"""A transcript in the formats of model APIs, and back: OpenAI Chat
Completions, the OpenAI Responses API, Anthropic Messages and Gemini.

``to_X(messages)`` is strict by default: it returns what ``from_X`` reads
back as the same messages (same content, hence the same digests, same count
and order), or raises ``InvalidArgument`` naming the message, the block and
what the format cannot hold. Besides the checks for what each format is
known to lack, every strict conversion is read back and compared, so nothing
is lost silently. ``to_X(messages, lossy=True)`` converts instead:

==============================  ===========  ===========  ===========  ===========
what the format cannot hold     Chat         Responses    Anthropic    Gemini
==============================  ===========  ===========  ===========  ===========
Transcript (spoken text)        text         text         text         text
reasoning                       dropped      (kept)       (kept)       (kept)
a reasoning item's id           dropped      (kept)       dropped      dropped
the incomplete marker           dropped      (kept)       dropped      dropped
erased placeholder              no content   no content   no content   no content
results of an erased tool use   no content   no content   no content   no content
is_error                        dropped      dropped      (kept)       (kept)
image in a tool result          dropped      (kept)       (kept)       dropped
image in an assistant message   dropped      dropped      dropped      (kept)
media type of a URL image       dropped      dropped      dropped      (kept)
arguments not in JSON form      (kept)       (kept)       parsed       parsed
system not first, or several    (kept)       (kept)       joined       joined
out-of-order assistant blocks   reordered    block order  (kept)       (kept)
messages the format would join  joined       joined       (kept)       (kept)
tool result not one text block  (kept)       (kept)       (kept)       joined
==============================  ===========  ===========  ===========  ===========

"no content": a message of the same role with no content; an erased
tool_results message answers each tool use of the message before it with an
empty result. "arguments not in JSON form": tool-use arguments other than
what ``json.dumps(value, ensure_ascii=False)`` writes, which a format that
keeps a parsed JSON object cannot give back byte for byte; "parsed": sent
parsed, and as ``{}`` when they are not a JSON object. "joined": every
system message's text goes into the one system prompt, and a Gemini tool
result's texts are joined by newlines. A tool result whose tool use is not
among the messages cannot be sent to Gemini (its function name is unknown)
in either mode.

``from_X`` never drops content silently: an unknown role, item or part type,
a missing field, a value of the wrong type, or a field the engine has no
place for is refused with ``InvalidArgument`` naming its path (say
``items[3].content[1].type``). Fields that are not content are not read:
item ids (except a Responses message item's ``id``, which becomes the
message's ``provider_item_id``, and a reasoning item's, which becomes its
last Reasoning block's ``item_id``), Anthropic ``cache_control``, Responses
``logprobs``, and the request fields besides the conversation (``model``,
``tools``...). A field that is null or empty counts as absent. Returned
messages have no ``id``: the store assigns ids. An image given by a bare URL
comes back with the media type ``image/*``. See docs/formats.md.
"""

from engine.formats._anthropic import from_anthropic, to_anthropic
from engine.formats._gemini import from_gemini, to_gemini
from engine.formats._openai_chat import from_openai_chat, to_openai_chat
from engine.formats._openai_responses import from_openai_responses, to_openai_responses

__all__ = [
    "from_anthropic",
    "from_gemini",
    "from_openai_chat",
    "from_openai_responses",
    "to_anthropic",
    "to_gemini",
    "to_openai_chat",
    "to_openai_responses",
]
