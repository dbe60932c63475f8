"""Shots, tracks and persons: the people stage of the pipeline (see docs/people.md).

``labels`` gives each sampled frame its shot (``shots`` detects cuts, fades, dissolves and wipes on
every decoded frame); ``stage.PeopleOfVideo`` turns each frame's faces into track ids
(``tracker``, ``appearance``, and ``identity`` for the jumps in look) and, once the video is
read, the tracks into persons (``persons``); ``stitch`` joins a long video's segment tracks.
"""
