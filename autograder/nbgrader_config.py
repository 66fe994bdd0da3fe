"""nbgrader configuration for this course.

The course directory is the checkout (the parent of this folder): sources and
instructor notebooks in solutions/, student notebooks in notebooks/, and the
instructor workspace (submitted/, autograded/, feedback/, gradebook.db) here in
autograder/, git-ignored.  The settings themselves live in
transformer_course.grader.nbgrading.apply_course_config, so `transformer-course` and plain
`nbgrader` commands run from this folder agree.
"""
import os

from transformer_course.grader.nbgrading import apply_course_config

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file
apply_course_config(c, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
