"""What the parts of a conversation hand each other, as plain data.

The live session in the worker hears a question (VAD, then an ASR engine), asks the apps
for the avatar's knowledge (`conversations.selectors.knowledge_search` -> `Passage`s) and
its memory (`ChatTurn`s), gives a responder a `ResponderRequest`, and speaks what comes
back sentence by sentence. The session's events to the page are named here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# Audio handed to VAD and ASR: mono float32 in [-1, 1] at this rate.
ASR_SAMPLE_RATE = 16000

Role = Literal["student", "avatar"]

# Session events (to the page, over the signaling WebSocket).
EVENT_USER_TRANSCRIPT = "user_transcript"  # {text, final}
EVENT_ANSWER_TEXT = "answer_text"  # {text}: the answer so far, as it streams
EVENT_TURN = "turn"  # {question, latencies}: an answer started playing
EVENT_TURN_ENDED = "turn_ended"  # {interrupted, total_ms}: an answer was said to its end, or stopped
EVENT_LISTENING = "listening"  # {speaking: bool}: the student started / stopped speaking


@dataclass(frozen=True)
class Passage:
    """A piece of an avatar's knowledge base that matches a question."""

    document_id: int
    title: str
    text: str
    score: float


@dataclass(frozen=True)
class ChatTurn:
    role: Role
    text: str


@dataclass(frozen=True)
class ResponderRequest:
    """Everything a responder answers from."""

    question: str
    persona: str = ""
    avatar_name: str = ""
    language: str = "en"
    history: tuple[ChatTurn, ...] = ()  # oldest first, without the question
    passages: tuple[Passage, ...] = ()  # best first
    fallback: str = ""  # what to say when there is nothing to answer from
    max_sentences: int = 3
    extra: dict = field(default_factory=dict)
