"""Media: everything that touches audio, video, pictures and subtitles, shared by the stages.

``ffmpeg`` (the only way omad runs ffmpeg/ffprobe, and probing untrusted input),
``audio`` and ``audio_prep`` (checks, loudness, WAV I/O), ``subtitles`` and
``subtitle_files`` (reading every common format, writing ASS), ``fonts``,
``kenburns`` and ``titlecard`` (drawing frames). Nothing here knows about jobs,
the inbox or the outbox: callers pass paths and the config's values, and get
back the facts for the job record. Modules are imported where used, so the
daemon starts without loading Pillow or numpy.
"""
