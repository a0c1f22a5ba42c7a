"""Every tunable number of g3w, in one place, with the reason for its value.

Durations are in seconds unless the name says otherwise.
"""

from __future__ import annotations

# --- Providers ---------------------------------------------------------------
# Abstrakt's GET /v1/models allows at most 100 models a page; g3w reads page after page
# (offset/total) up to MAX_PAGES (10,000 models, far above the ~45 listed), so that a server that
# ignores offset, or whose total never comes, cannot keep it reading forever.
ABSTRAKT_MODELS_LIMIT = 100
ABSTRAKT_MODELS_MAX_PAGES = 100
# Model lists cached under G3W_HOME (for `run`'s input check and the shell completions) are
# fetched again once older than a day: catalogues change by the week, and a stale schema costs
# at most a warning or the provider's own 400.
MODELS_CACHE_MAX_AGE = 24 * 3600.0
# The cache holds what the provider told this account: private to its owner, like history.db.
MODELS_CACHE_FILE_MODE = 0o600
MODELS_CACHE_DIR_MODE = 0o700
# `models show`: an input's allowed values are listed up to this many, then counted.
MODEL_ENUM_SHOWN = 12
# A table column that may be dropped (a description) is shown only when the terminal leaves it
# at least this many characters; a narrower column would wrap into a tall, unreadable table.
TABLE_DROPPABLE_MIN_WIDTH = 16

# --- HTTP --------------------------------------------------------------------
HTTP_CONNECT_TIMEOUT = 5.0
HTTP_READ_TIMEOUT = 30.0
# Abstrakt's sync mode blocks for up to ~55 s before answering 202; Get3W's
# `?sync=true` has no documented limit. Leave room above the provider's cutoff.
HTTP_SYNC_READ_TIMEOUT = 75.0
HTTP_POOL_LIMIT = 100
# Parsed request URLs kept for reuse (a batch's submit URLs, one per model).
HTTP_PARSED_URLS = 256
# Every API request ends by this deadline, answer read whole, whatever its pace: each read's
# timeout alone lets an answer trickling a byte at a time hold a command forever. An API answer is
# a few KiB of JSON, so this cuts only a trickle; it is above the connect and pool-wait timeouts
# (5 s + 30 s), so a request that never left fails on those first (a POST may then be resent).
HTTP_REQUEST_DEADLINE = 60.0
# The sync-mode submit may be held HTTP_SYNC_READ_TIMEOUT before its first byte; then the same
# margin as above for the rest of its answer.
HTTP_SYNC_REQUEST_DEADLINE = HTTP_SYNC_READ_TIMEOUT + 30.0
# An upload's deadline grows by its size at this pace (512 kbit/s, a slow uplink), so a 100 MB
# video may take an hour to send but a stalled upload still ends.
HTTP_UPLOAD_MIN_BYTES_PER_S = 64 * 1024
# A `--via stream` answer that sends nothing (no event, no comment) for this long has broken:
# the task is then polled (never submitted again). Providers send progress every few seconds.
STREAM_IDLE_TIMEOUT = 60.0
DOWNLOAD_READ_TIMEOUT = 60.0
DOWNLOAD_CHUNK_BYTES = 64 * 1024
# A download (its answer's headers included) is stalled, and cut, when fewer than MIN_BYTES
# arrive within a WINDOW: below ~1 KiB/s a 2 MiB image would take over half an hour. A stall is
# retried like a dropped connection, within the retry budget.
DOWNLOAD_STALL_WINDOW = 30.0
DOWNLOAD_STALL_MIN_BYTES = 32 * 1024
# We ask output hosts for `Accept-Encoding: identity`; one that compresses anyway may not make
# an output expand beyond EXPANSION times the bytes received (images and video do not
# compress, text ~10x, a run of zeros ~1000x: a "zip bomb"), once past the FLOOR that any
# output may decode to, nor beyond MAX_DECODED_BYTES in any case.
DOWNLOAD_MAX_EXPANSION = 50
DOWNLOAD_EXPANSION_FLOOR = 16 * 1024 * 1024
DOWNLOAD_MAX_DECODED_BYTES = 2 * 1024 * 1024 * 1024
# Above this size a download shows a progress bar on a terminal.
DOWNLOAD_PROGRESS_MIN_BYTES = 1024 * 1024
# The download bar's width in cells: bytes, speed and ETA need the rest of an 80-column line.
PROGRESS_BAR_WIDTH = 20
# --preview: how long the terminal gets to answer "which graphics do you have" (a local terminal
# answers in a few ms; an ssh link takes a round trip); the largest output fetched just to be
# shown (an image is a few MiB; anything larger is better opened with -o and `g3w open`); rows
# of the window left free under the image (the prompt and the line naming it stay in view); at
# most this many times enlarged (a 64 px image is not blown up to a whole screen of blur); the
# pixel size of a cell when the terminal does not say (VT340's, textual-image's guess too); and
# the base64 characters per kitty graphics escape (the protocol's limit is 4096).
PREVIEW_TERMINAL_ANSWER_TIMEOUT = 0.5
PREVIEW_MAX_BYTES = 64 * 1024 * 1024
PREVIEW_ROWS_KEPT = 3
PREVIEW_MAX_SCALE = 4.0
PREVIEW_CELL_PIXELS = (10, 20)
PREVIEW_KITTY_CHUNK = 4096
# `g3w open`: a viewer that exits within this long is checked for failure; one still running
# then (a browser, an image viewer window) is left to run on its own.
OPEN_VIEWER_WAIT = 5.0

# --- Retries (attempts *and* a time budget, like stamina) ---------------------
RETRY_MAX_ATTEMPTS = 5
RETRY_BUDGET = 60.0
RETRY_BACKOFF_BASE = 0.5
RETRY_BACKOFF_CAP = 8.0
# A provider asking us to wait longer than this is treated as "give up now".
RETRY_AFTER_MAX = 120.0
# Provider error messages are cut to this length: one readable line, never a page.
ERROR_MESSAGE_MAX_CHARS = 300

# --- Waiting -----------------------------------------------------------------
DEFAULT_WAIT_TIMEOUT = 30 * 60.0
POLL_INITIAL = 1.0
POLL_MIN = 0.2
POLL_MAX_DEFAULT = 10.0
POLL_BACKOFF_FACTOR = 1.5
# Default fallback-after is max(FALLBACK_MIN, FALLBACK_FACTOR * estimated_duration).
FALLBACK_MIN = 60.0
FALLBACK_FACTOR = 2.0
# Time allowed for a best-effort cancel when leaving on timeout or Ctrl-C (the look at the task
# that comes first included).
CANCEL_ON_EXIT_BUDGET = 10.0
# After Ctrl-C or SIGTERM, a submit POST already sent gets this long to answer, so that the
# task's id reaches the user and the journal instead of leaving it "unknown".
SUBMIT_ANSWER_GRACE = 10.0
# A status word g3w does not know is repeated on stderr: cut to one short line.
STATUS_WORD_MAX_CHARS = 40

# --- Webhooks ----------------------------------------------------------------
WEBHOOK_TOKEN_BYTES = 24  # 192 random bits; the contract asks for at least 128
WEBHOOK_MAX_BODY_BYTES = 10 * 1024 * 1024
WEBHOOK_TIMESTAMP_TOLERANCE = 5 * 60.0
# Deliveries that arrive before their task id is known are held this long.
WEBHOOK_EARLY_HOLD = 10 * 60.0
WEBHOOK_EARLY_MAX = 10_000
LISTEN_DEFAULT_PORT = 3000
FORWARD_MAX_ATTEMPTS = 8
FORWARD_BACKOFF_BASE = 0.5
FORWARD_BACKOFF_CAP = 10.0
FORWARD_TIMEOUT = 10.0
# `g3w listen --replay` is one deliberate send, so it gives up sooner than a live forward.
FORWARD_REPLAY_ATTEMPTS = 3
# `g3w listen`: deliveries acknowledged but not yet printed / forwarded / saved. When full, the
# receiver answers 503 so that the provider retries later instead of the event being lost.
LISTEN_OUTPUT_BACKOFF = 0.005  # how often a full output queue is retried
LISTEN_QUEUE_MAX = 1_000
# ... and bounded in bytes too (bodies and headers, from the read until printed, saved, run by
# --exec and forwarded): 80 deliveries of 8 MiB behind a slow consumer once took 1.3 GiB. Room
# for six deliveries of the largest size (it must exceed WEBHOOK_MAX_BODY_BYTES, or one could
# never fit); typical callbacks are a few KiB, so for them the count bound comes first.
LISTEN_QUEUE_MAX_BYTES = 64 * 1024 * 1024
# Each kind of rejection note (404, 405, 413, bad JSON, ...) prints at most once per interval;
# the rest are counted into the next note, so a flood cannot flood the terminal.
LISTEN_NOTE_INTERVAL = 1.0
LISTEN_RETRY_AFTER_S = 1  # Retry-After of the 503 answered while the queue is full
# `g3w listen` mentions each status word it does not know once; it remembers this many words,
# so that a stranger posting a new word each time cannot grow its memory (they still print as
# events, status processing).
LISTEN_UNKNOWN_WORDS_MAX = 100
# Dedupe keys (task id, status) and settled ids remembered; oldest forgotten first.
WEBHOOK_DEDUPE_MAX = 100_000
# Grace given to in-flight requests when the listener closes.
WEBHOOK_SHUTDOWN_TIMEOUT = 1.0
# A connection gets this long to send a request's complete headers, counted from its start and
# again from each answer (so it is also the keep-alive idle time); then it is closed. A provider
# sends its headers at once; a stranger trickling them must not hold file descriptors forever.
WEBHOOK_HEADER_TIMEOUT = 5.0
# Running out of file descriptors makes asyncio retry accept() every second; one note per this
# long says so (the rest are counted into the next note).
WEBHOOK_ACCEPT_NOTE_INTERVAL = 30.0
WEBHOOK_PROBE_NONCE_BYTES = 16
WEBHOOK_PROBES_MAX = 1_000
# An Abstrakt timestamp this large is in milliseconds (as seconds it would be year 33658).
WEBHOOK_TIMESTAMP_MS_THRESHOLD = 1e12

# --- Tunnels -----------------------------------------------------------------
TUNNEL_START_TIMEOUT = 20.0
TUNNEL_PROBE_TIMEOUT = 10.0
# Timeout of each call to the ngrok agent's local API (create / delete the endpoint).
TUNNEL_API_TIMEOUT = 4.0
# pyngrok's own startup timeout is set this much above ours, so ours always decides.
TUNNEL_STARTUP_MARGIN = 2.0
# While abandoning a start, how often the agent process is killed again until pyngrok gives up.
TUNNEL_KILL_POLL = 0.05
# `<agent> version` answers at once (a Go binary printing a string); more is not an agent.
NGROK_VERSION_TIMEOUT = 5.0
# pyngrok downloads the agent (~10 MB from ngrok's CDN); past this the install is given up.
NGROK_INSTALL_TIMEOUT = 180.0
# While another g3w installs the agent, how often this one checks whether it is done.
NGROK_LOCK_POLL = 0.1
# A file this small that names pyngrok is pyngrok's console script (or pip's launcher for it), not
# the agent (a ~25 MB Go binary): it is never run, since running it makes pyngrok download ngrok.
NGROK_SCRIPT_MAX_BYTES = 1 << 20
# ngrok agent releases that changed what pyngrok must speak (ngrok's agent changelog): 3.16 reads
# version "3" config files, 3.30 added the /api/endpoints agent API (pyngrok 9's default).
NGROK_CONFIG_V3_SINCE = (3, 16)
NGROK_ENDPOINTS_API_SINCE = (3, 30)
# The pyngrok major versions g3w is tested with (pyproject pins them); 9 drives agents 3.x only.
PYNGROK_MAJORS = (9,)
PYNGROK_AGENT_MAJOR = 3
# The agent's own words in a message are cut after this many characters (its code is kept).
NGROK_MESSAGE_MAX = 500
# cloudflared's quick tunnel URL "may take some time to be reachable" (its own banner says so):
# while the probe meets Cloudflare's "not connected yet" answers (502, 503, 530) or a name that
# does not resolve yet, it is sent again every RETRY seconds, for PATIENCE at most. A refused
# connection or any other answer fails at once.
CLOUDFLARED_REACH_PATIENCE = 15.0
CLOUDFLARED_REACH_RETRY = 0.5
# On close cloudflared gets SIGTERM, then this long to unregister its connections (it does so in
# well under a second when no request is in flight), then SIGKILL.
CLOUDFLARED_STOP_GRACE = 3.0
# The last lines of cloudflared's log kept, to quote its own words in a failure.
CLOUDFLARED_LOG_TAIL = 20
# `cloudflared --version` (for doctor) answers at once; a binary that does not is reported.
CLOUDFLARED_VERSION_TIMEOUT = 5.0
# The relay (`g3w relay`). It is on this machine: a borrower that cannot connect and register
# within CONNECT seconds treats it as dead. A borrower answers a delivery as its own listener
# would (classify and queue, no I/O), so one that has not answered within REPLY seconds is stuck;
# the provider then gets 504 and retries, as for any receiver.
RELAY_CONNECT_TIMEOUT = 2.0
RELAY_REPLY_TIMEOUT = 5.0
# Pings on each borrower's connection: a peer gone without closing it (a suspended machine) is
# noticed within about this long, and its registration dropped.
RELAY_HEARTBEAT = 10.0
# Borrowers at once (each holds a connection and a token); more are refused (503).
RELAY_MAX_CLIENTS = 4096
RELAY_SECRET_BYTES = 32  # the control secret in relay.json: 256 random bits
# A borrower's token: the same length rules as the listener's (at least 128 bits, URL-safe).
RELAY_TOKEN_MIN_CHARS = 22
RELAY_TOKEN_MAX_CHARS = 128
# One frame between relay and borrower: a delivery (at most WEBHOOK_MAX_BODY_BYTES) plus its
# method, path and headers (aiohttp's own header limit is 8 KiB a field, ~100 fields).
RELAY_FRAME_MAX_BYTES = 10 * 1024 * 1024 + 1024 * 1024
# `relay status`, `relay stop` and doctor ask the relay over its control port with this timeout.
RELAY_CONTROL_TIMEOUT = 2.0
# `relay stop` waits this long for the relay to exit; a relay closing a tunnel takes ~1 s.
RELAY_STOP_TIMEOUT = 15.0
RELAY_STOP_POLL = 0.05
# `relay --detach` waits this long for the background relay to report its public URL: a tunnel's
# start and its end-to-end check, with a margin for the process's own start.
RELAY_DETACH_TIMEOUT = TUNNEL_START_TIMEOUT + TUNNEL_PROBE_TIMEOUT + CLOUDFLARED_REACH_PATIENCE
# How long a starting relay retries taking its lock while `relay status` or a run briefly holds
# it shared to see whether a relay is running.
RELAY_LOCK_PATIENCE = 0.5
RELAY_LOCK_RETRY = 0.01

# --- Batch -------------------------------------------------------------------
BATCH_DEFAULT_CONCURRENCY = 8
BATCH_PROGRESS_INTERVAL = 5.0
# -j above this is refused: each slot is an open connection and a waiter.
BATCH_MAX_CONCURRENCY = 512
# Lines read ahead of the workers: the reader stays this many times -j ahead, no further,
# so memory does not grow with the file.
BATCH_QUEUE_FACTOR = 2
# A 429 without Retry-After pauses submits for BASE * 2**n seconds (n: 429s in a row), capped.
BATCH_THROTTLE_BACKOFF_BASE = 0.5
BATCH_THROTTLE_BACKOFF_CAP = 30.0
# A submit whose connection never opened is retried this many times before the line is
# reported as not submitted (resume submits it again).
BATCH_SUBMIT_MAX_ATTEMPTS = 5
# Invalid lines listed one by one; beyond this only their count is given.
BATCH_INVALID_SHOWN = 50
# The final summary names this many keys of lines that did not complete (and of invalid lines
# skipped), then says how many more: enough to start looking, short enough for a CI log.
BATCH_SUMMARY_KEYS_SHOWN = 10
# The batch name derived from the file: this many hex digits of its SHA-256.
BATCH_NAME_HASH_CHARS = 16
BATCH_READ_CHUNK_BYTES = 1024 * 1024
# Files are hashed (a batch file, an uploaded input) this many bytes at a time.
HASH_CHUNK_BYTES = 1024 * 1024
# Submits of a batch in progress at once: a submit is short, so 16 keep -j 64 tasks in
# flight against a provider 250 ms away, without opening 64 connections to it.
BATCH_SUBMITS_AT_ONCE = 16
# Refresh period of the progress bar on a terminal, and its width (the counters need the rest).
BATCH_PROGRESS_REFRESH = 0.25
BATCH_PROGRESS_BAR_WIDTH = 16

# --- CI and scripts ------------------------------------------------------------
# GitHub refuses a step summary (the whole $GITHUB_STEP_SUMMARY file of a step) above 1 MiB; g3w
# stops adding table rows this far below it, leaving room for the line that counts the rest.
GITHUB_SUMMARY_MAX_BYTES = 1024 * 1024
GITHUB_SUMMARY_RESERVE_BYTES = 4 * 1024
# Random bytes of the delimiter of a multi-line $GITHUB_OUTPUT value (the toolkit uses a UUID).
GITHUB_OUTPUT_DELIMITER_BYTES = 16
# Inline images in the step summary are shown this tall (pixels): a table row, not a poster.
GITHUB_SUMMARY_IMAGE_HEIGHT = 96
# GitLab rejects a dotenv report above 5 KB; the record (the largest value) is left out first.
DOTENV_MAX_BYTES = 5 * 1024
# An idempotency key is a header value: printable ASCII, at most this long (Stripe's limit).
IDEMPOTENCY_KEY_MAX_CHARS = 255

# --- Journal -----------------------------------------------------------------
# How long a write waits for another g3w process holding the journal's lock. A writer holds it
# for one short transaction, so a few seconds is plenty; sqlite's default of 5 s (and our old
# 30 s) made a stuck journal look like a hung command.
JOURNAL_BUSY_TIMEOUT = 3.0
# The write-ahead log is cut back to this size after each checkpoint (otherwise it keeps the
# size of its largest burst, e.g. a batch of large inputs, for ever).
JOURNAL_WAL_LIMIT_BYTES = 4 * 1024 * 1024
# history.db, its -wal and -shm hold prompts: readable by their owner only; so is the folder
# g3w creates for them.
JOURNAL_FILE_MODE = 0o600
JOURNAL_DIR_MODE = 0o700
# `g3w history --refresh`: GETs in flight at once. Enough to refresh a long journal quickly,
# few enough to stay far below the providers' rate limits (a 429 is still retried by http).
HISTORY_REFRESH_CONCURRENCY = 8
# `g3w history`'s prompt column: enough to recognise a prompt, short enough for one table row.
HISTORY_PROMPT_CHARS = 40
# Shell completion offers the ids of this many newest journalled tasks: enough for the tasks of
# a working day, few enough that the list stays readable and is read in a few milliseconds.
COMPLETION_TASK_IDS = 50

# --- Sandbox -----------------------------------------------------------------
SANDBOX_DEFAULT_PORT = 8080
SANDBOX_DEFAULT_DURATION = 1.0
SANDBOX_SYNC_CUTOFF = 55.0
SANDBOX_WEBHOOK_TIMEOUT = 10.0
# Video models run this many times longer than the sandbox's default duration.
SANDBOX_VIDEO_DURATION_FACTOR = 2.0
# A task moves from created/pending to processing after this fraction of its duration.
SANDBOX_PROCESSING_FRACTION = 0.1
# Webhook retry schedules: the delay before each attempt (first one immediate), scaled by
# SandboxOptions.webhook_time_scale. Get3W's come from the seed pages; Abstrakt documents
# none, so the sandbox picks a similar one.
SANDBOX_RETRY_SCHEDULE_GET3W_V1 = (0.0, 2.0, 4.0, 8.0)
SANDBOX_RETRY_SCHEDULE_GET3W_V3 = (0.0, 10.0, 30.0, 60.0)
SANDBOX_RETRY_SCHEDULE_ABSTRAKT = (0.0, 5.0, 15.0, 30.0)
# A scaled per-attempt webhook timeout never drops below this (a receiver needs a moment).
SANDBOX_WEBHOOK_MIN_TIMEOUT = 1.0
# Requests up to this size are accepted (the largest documented upload is 100 MB of video).
SANDBOX_MAX_BODY_BYTES = 128 * 1024 * 1024
# sandbox_output_bytes is capped here so a typo cannot make the sandbox build gigabytes.
SANDBOX_MAX_OUTPUT_BYTES = 256 * 1024 * 1024
SANDBOX_PNG_SIZE = 64  # generated outputs are SANDBOX_PNG_SIZE x SANDBOX_PNG_SIZE RGB
# Handlers still running at close() (a long sync wait) get this long before they are cancelled.
SANDBOX_SHUTDOWN_TIMEOUT = 1.0
SANDBOX_BALANCE_USD = 42.5
# A streamed sandbox task sends this many progress events over its duration (then its end).
SANDBOX_STREAM_EVENTS = 4
# Abstrakt's documented Pro tier (requests a minute), echoed in X-RateLimit-* headers.
SANDBOX_RATELIMIT_LIMIT = 100
SANDBOX_RATELIMIT_WINDOW = 60.0
# A sandbox state file (SandboxOptions.state_file) keeps only this many newest tasks.
SANDBOX_STATE_MAX = 1000
# Task changes within this many seconds are written to the state file in one go (a batch of
# submits rewrites it once, not once per task); close() writes whatever is still pending.
SANDBOX_STATE_SAVE_DELAY = 0.05
