"""A whole class at once: the LMS download layouts (roster), grading them in parallel or on Dask
(batch), the gradebook and summary, the feedback pages, the LMS's own import files (lms), the
regrade diff (diff) and the similarity report (similarity)."""
