"""Recording fixtures: OpenAI Realtime server-event streams shaped like real
recorded calls (event shapes, orderings, lengths, timing patterns), built
by seeded generators with this project's own ids and words, each with the
transcript its script meant to produce.

The shapes follow two recorded beta calls (a ten-minute WebRTC call with
transcription off, and a short call re-serialised by an SDK with explicit
nulls) and the GA server-event types of the ``openai`` Python SDK
(``openai/types/realtime``). No text or id is copied from a recording."""

from __future__ import annotations

from collections.abc import Callable

from tests.recordings import beta, ga
from tests.recordings._model import Expected, Recording

__all__ = ["GENERATORS", "IMAGES", "RECORDINGS", "TRUNCATIONS", "Expected", "Recording"]

# Each a deterministic function of its own seed.
GENERATORS: tuple[Callable[[], Recording], ...] = (
    beta.ten_minute_call,
    beta.normalised_call,
    ga.transcribed_call,
    ga.out_of_band_call,
    ga.client_inserts_call,
    ga.transcript_before_item_call,
    ga.empty_completed_call,
    ga.incomplete_responses_call,
    ga.multipart_and_image_call,
    ga.reconnect_reseed_call,
)

RECORDINGS: dict[str, Recording] = {recording.name: recording for recording in (make() for make in GENERATORS)}

# Messages that carry an Image block: (message index, media type, bytes).
IMAGES = ga.IMAGES
# Messages whose Transcript block records a truncation: (message index, audio_end_ms).
TRUNCATIONS = ga.TRUNCATIONS
