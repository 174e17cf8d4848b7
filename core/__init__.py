"""Shared vocabulary of every Raqib stage: types, errors, settings. Imports nothing of ours."""
