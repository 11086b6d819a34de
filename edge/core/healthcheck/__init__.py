"""The elderly's annual health check (老年人健康管理, 国家基本公共卫生服务规范 第三版):
健康体检表 and 老年人生活自理能力评估表.

- `fields`: the form's fields and code lists (the follow-up forms' `Field`).
- `selfcare`: the self-care assessment: five items, their scores, the total and the band.
- `rows`: the tables of rows (住院史, 家庭病床史, 主要用药情况, 非免疫规划预防接种史) and their checks.
- `validation`: server-side validation (the follow-up forms' field reader plus this form's checks).
- `records`: versioned storage (outbox kind 'health_check' and audit in the same transaction).
- `prefill`: the values the clinic's devices measured for the resident on the check day, each with its reading.
"""
from .fields import FORM  # noqa: F401
