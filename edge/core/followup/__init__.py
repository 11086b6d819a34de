"""National chronic-disease follow-up forms (国家基本公共卫生服务规范 第三版):
高血压患者随访服务记录表 and 2型糖尿病患者随访服务记录表.

- `fields`: the two forms' fields and code lists (pure data).
- `validation`: server-side validation with a message per field (Chinese, English).
- `rules`: the standard's rules: classification, urgent referral, next visit, BMI.
- `records`: versioned storage (each save is a version; outbox + audit in the same transaction).
- `prefill`: what the form opens with (today's device readings, carried-forward lifestyle).
"""
from .fields import FORM_DIABETES, FORM_HYPERTENSION, FORMS  # noqa: F401
