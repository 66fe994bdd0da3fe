"""The grader: everything between a submitted notebook and its grade, and none of the teaching.

- :mod:`.course`: where the course checkout is, its assignments, and each one's check module;
- :mod:`.settings`: every setting of the grader, once (time and memory limits, the protected packages);
- :mod:`.nbgrading`: nbgrader configured for the course, the one grading path that ``check`` and
  ``autograde`` share, and the gradebook cache that makes ``check`` fast;
- :mod:`.sandbox`: runs one submission in a bubblewrap sandbox with limits (the trusted side);
- :mod:`.harness`: the process inside the sandbox that runs the cells and guards what the checks use;
- :mod:`.review`: the static review that flags code reaching into the grader;
- :mod:`.classroom`: collect, autograde (in parallel, resumable), feedback, export.

The checks themselves (what is wrong with an answer and why) live in :mod:`transformer_course.grading`.
docs/ARCHITECTURE.md draws the flow.
"""
