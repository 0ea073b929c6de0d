"""Conversations in a live session: hearing the student (VAD, ASR engines), answering
(responders), and the turn-taking between them (`dialogue`)."""
