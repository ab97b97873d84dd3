from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from kernel.identity.models import Gender
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='AuditLogEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('staff_id', fields.BigIntField(null=True, db_index=True)),
                ('action', fields.CharField(db_index=True, max_length=64)),
                ('target_type', fields.CharField(max_length=64)),
                ('target_id', fields.CharField(max_length=64)),
                ('detail', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('request_id', fields.CharField(default='', max_length=64)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'audit_log', 'app': 'kernel', 'indexes': [Index(fields=['target_type', 'target_id'])], 'pk_attr': 'id', 'table_description': 'Who did what to which record: written in the same transaction as every staff write.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Customer',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('openid', fields.CharField(unique=True, max_length=64)),
                ('unionid', fields.CharField(null=True, db_index=True, max_length=64)),
                ('session_key_sealed', fields.CharField(null=True, max_length=255)),
                ('nickname', fields.CharField(default='', max_length=64)),
                ('avatar_url', fields.CharField(default='', max_length=512)),
                ('gender', fields.CharEnumField(default=Gender.unknown, description='unknown: unknown\nfemale: female\nmale: male', enum_type=Gender, max_length=16)),
                ('birth_date', fields.DateField(null=True)),
                ('phone_sealed', fields.CharField(null=True, max_length=255)),
                ('phone_hash', fields.CharField(null=True, db_index=True, max_length=64)),
                ('phone_masked', fields.CharField(null=True, max_length=32)),
                ('referral_code', fields.CharField(unique=True, max_length=16)),
                ('signup_referral_code', fields.CharField(null=True, max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_login_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'customer', 'app': 'kernel', 'pk_attr': 'id', 'table_description': 'A mini-program user (顾客/会员), known by openid (and unionid when WeChat gives one).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OutboxMessage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('job_name', fields.CharField(max_length=128)),
                ('args', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('run_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('delivered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('attempts', fields.IntField(default=0)),
                ('last_error', fields.CharField(default='', max_length=512)),
            ],
            options={'table': 'outbox_message', 'app': 'kernel', 'indexes': [Index(fields=['delivered_at', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StaffMember',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('username', fields.CharField(unique=True, max_length=64)),
                ('display_name', fields.CharField(default='', max_length=64)),
                ('password_hash', fields.CharField(max_length=255)),
                ('roles', fields.CharField(max_length=128)),
                ('is_active', fields.BooleanField(default=True)),
                ('token_version', fields.IntField(default=1)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'staff_member', 'app': 'kernel', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
