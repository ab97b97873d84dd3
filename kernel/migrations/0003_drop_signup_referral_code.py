from tortoise import migrations
from tortoise.migrations import operations as ops

class Migration(migrations.Migration):
    dependencies = [('kernel', '0002_customer_erasure')]

    initial = False

    operations = [
        ops.RemoveField(model_name='Customer', name='signup_referral_code'),
    ]
