"""Storyboards: a video job stopped for review, its scenes edited, and only what changed made again.

- :mod:`.voice_cache`: each scene's voice and word timings, kept by what determines them;
- :mod:`.review`: the journaled "waiting for review" state and the Render that ends it;
- :mod:`.board`: the storyboard as data (read from the job, edited, checked, written back).
"""
