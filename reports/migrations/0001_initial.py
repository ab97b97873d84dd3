from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='AcquisitionDay',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('day', fields.DateField()),
                ('source_kind', fields.CharField(max_length=24)),
                ('customers', fields.IntField(default=0, db_default=0)),
            ],
            options={'table': 'report_acquisition_day', 'app': 'reports', 'unique_together': (('day', 'source_kind'),), 'pk_attr': 'id', 'table_description': 'New customers per clinic day of their first login and acquisition source.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CampaignFunnel',
            fields=[
                ('campaign_id', fields.BigIntField(primary_key=True, unique=True, db_index=True)),
                ('title', fields.CharField(max_length=64)),
                ('kind', fields.CharField(max_length=16)),
                ('first_day', fields.DateField()),
                ('last_day', fields.DateField()),
                ('branch_ids', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('views', fields.IntField(default=0, db_default=0)),
                ('opened', fields.IntField(default=0, db_default=0)),
                ('joined', fields.IntField(default=0, db_default=0)),
                ('paid', fields.IntField(default=0, db_default=0)),
                ('succeeded', fields.IntField(default=0, db_default=0)),
                ('virtually_completed', fields.IntField(default=0, db_default=0)),
                ('failed', fields.IntField(default=0, db_default=0)),
                ('refunded', fields.IntField(default=0, db_default=0)),
                ('paid_fen', fields.BigIntField(default=0, db_default=0)),
                ('refunded_fen', fields.BigIntField(default=0, db_default=0)),
                ('folded_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'report_campaign_funnel', 'app': 'reports', 'indexes': [Index(fields=['first_day', 'last_day'])], 'pk_attr': 'campaign_id', 'table_description': 'The group-buy funnel of one campaign, recomputed while it can still change.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CustomerMonth',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('month', fields.DateField()),
                ('branch_id', fields.BigIntField()),
                ('customer_id', fields.BigIntField()),
                ('amount_fen', fields.BigIntField(default=0, db_default=0)),
                ('refunded_fen', fields.BigIntField(default=0, db_default=0)),
            ],
            options={'table': 'report_customer_month', 'app': 'reports', 'unique_together': (('month', 'branch_id', 'customer_id'),), 'pk_attr': 'id', 'table_description': "One customer's consumption in one clinic month at one branch (top-customer share)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CustomerVisits',
            fields=[
                ('customer_id', fields.BigIntField(primary_key=True, unique=True, db_index=True)),
                ('first_day', fields.DateField(null=True)),
                ('first_branch_id', fields.BigIntField(default=0, db_default=0)),
                ('second_day', fields.DateField(null=True)),
                ('gap_days', fields.IntField(null=True)),
            ],
            options={'table': 'report_customer_visits', 'app': 'reports', 'indexes': [Index(fields=['first_day', 'first_branch_id', 'gap_days'])], 'pk_attr': 'customer_id', 'table_description': "A customer's first two paid visits (clinic days with a consumption not refunded in full)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DirtyMonth',
            fields=[
                ('month', fields.DateField(primary_key=True, unique=True, db_index=True)),
            ],
            options={'table': 'report_dirty_month', 'app': 'reports', 'pk_attr': 'month', 'table_description': 'A clinic month whose top-share rows must be recomputed (written by the consumption folds).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='FoldCursor',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('position', fields.BigIntField(default=0, db_default=0)),
                ('updated_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'report_fold_cursor', 'app': 'reports', 'pk_attr': 'name', 'table_description': 'How far a summary fold got in one source (the last source id folded), and when.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MallDay',
            fields=[
                ('day', fields.DateField(primary_key=True, unique=True, db_index=True)),
                ('redemptions', fields.IntField(default=0, db_default=0)),
                ('units', fields.IntField(default=0, db_default=0)),
                ('cancelled_units', fields.IntField(default=0, db_default=0)),
                ('points_spent', fields.BigIntField(default=0, db_default=0)),
            ],
            options={'table': 'report_mall_day', 'app': 'reports', 'pk_attr': 'day', 'table_description': 'Points-mall redemptions per clinic day they were made: units taken, units given back, points.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PointsDay',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('day', fields.DateField()),
                ('kind', fields.CharField(max_length=16)),
                ('points_in', fields.BigIntField(default=0, db_default=0)),
                ('points_out', fields.BigIntField(default=0, db_default=0)),
            ],
            options={'table': 'report_points_day', 'app': 'reports', 'unique_together': (('day', 'kind'),), 'pk_attr': 'id', 'table_description': 'Points ledger movements per clinic day and entry kind (earned, spent, expired, reversed ...).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PointsLiability',
            fields=[
                ('day', fields.DateField(primary_key=True, unique=True, db_index=True)),
                ('balance', fields.BigIntField(default=0, db_default=0)),
                ('pending', fields.BigIntField(default=0, db_default=0)),
                ('expiring_30', fields.BigIntField(default=0, db_default=0)),
                ('expiring_90', fields.BigIntField(default=0, db_default=0)),
                ('taken_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'report_points_liability', 'app': 'reports', 'pk_attr': 'day', 'table_description': 'What the points owe at the end of a clinic day (last fold of that day): spendable, pending, expiring.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ReferralRewardDay',
            fields=[
                ('day', fields.DateField(primary_key=True, unique=True, db_index=True)),
                ('paid_fen', fields.BigIntField(default=0, db_default=0)),
                ('paid_points', fields.BigIntField(default=0, db_default=0)),
                ('rewards', fields.IntField(default=0, db_default=0)),
                ('reversed_fen', fields.BigIntField(default=0, db_default=0)),
            ],
            options={'table': 'report_referral_reward_day', 'app': 'reports', 'pk_attr': 'day', 'table_description': 'Referral rewards per clinic day they were paid (cash fen, points), and reversals of paid cash.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RfmClassDay',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('as_of', fields.DateField()),
                ('rfm_class', fields.CharField(max_length=32)),
                ('customers', fields.IntField(default=0, db_default=0)),
            ],
            options={'table': 'report_rfm_class_day', 'app': 'reports', 'unique_together': (('as_of', 'rfm_class'),), 'pk_attr': 'id', 'table_description': 'RFM class sizes on a scoring day.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RfmMovementDay',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('as_of', fields.DateField()),
                ('from_class', fields.CharField(max_length=32)),
                ('to_class', fields.CharField(max_length=32)),
                ('customers', fields.IntField(default=0, db_default=0)),
            ],
            options={'table': 'report_rfm_movement_day', 'app': 'reports', 'unique_together': (('as_of', 'from_class', 'to_class'),), 'pk_attr': 'id', 'table_description': 'Customers who moved between two RFM classes on a scoring day ("" = entered, first score).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SalesDay',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('day', fields.DateField()),
                ('branch_id', fields.BigIntField()),
                ('source_kind', fields.CharField(max_length=24)),
                ('consumptions', fields.IntField(default=0, db_default=0)),
                ('amount_fen', fields.BigIntField(default=0, db_default=0)),
                ('refunded_fen', fields.BigIntField(default=0, db_default=0)),
            ],
            options={'table': 'report_sales_day', 'app': 'reports', 'unique_together': (('day', 'branch_id', 'source_kind'),), 'pk_attr': 'id', 'table_description': "Consumptions per clinic day, branch and the customer's acquisition source (来源), gross and refunded."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StaffBranch',
            fields=[
                ('staff_id', fields.BigIntField(primary_key=True, unique=True, db_index=True)),
                ('branch_id', fields.BigIntField()),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'report_staff_branch', 'app': 'reports', 'pk_attr': 'staff_id', 'table_description': 'The branch a front-desk staff member works at: their reports are limited to it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SurveyDay',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('day', fields.DateField()),
                ('branch_id', fields.BigIntField()),
                ('department_id', fields.BigIntField()),
                ('practitioner_id', fields.BigIntField()),
                ('responses', fields.IntField(default=0, db_default=0)),
                ('score_sum', fields.IntField(default=0, db_default=0)),
            ],
            options={'table': 'report_survey_day', 'app': 'reports', 'unique_together': (('day', 'branch_id', 'department_id', 'practitioner_id'),), 'pk_attr': 'id', 'table_description': 'Satisfaction survey answers per clinic day answered, branch, department and doctor.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TopShareMonth',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('month', fields.DateField()),
                ('branch_id', fields.BigIntField()),
                ('customers', fields.IntField(default=0, db_default=0)),
                ('revenue_fen', fields.BigIntField(default=0, db_default=0)),
                ('top_customers', fields.IntField(default=0, db_default=0)),
                ('top_revenue_fen', fields.BigIntField(default=0, db_default=0)),
            ],
            options={'table': 'report_top_share_month', 'app': 'reports', 'unique_together': (('month', 'branch_id'),), 'pk_attr': 'id', 'table_description': "The top 20% of customers' share of one clinic month's revenue, per branch (-1 = every branch)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='VisitDay',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('day', fields.DateField()),
                ('branch_id', fields.BigIntField()),
                ('department_id', fields.BigIntField()),
                ('practitioner_id', fields.BigIntField()),
                ('bookings', fields.IntField(default=0, db_default=0)),
                ('no_shows', fields.IntField(default=0, db_default=0)),
                ('consultations', fields.IntField(default=0, db_default=0)),
                ('converted', fields.IntField(default=0, db_default=0)),
                ('converted_fen', fields.BigIntField(default=0, db_default=0)),
            ],
            options={'table': 'report_visit_day', 'app': 'reports', 'unique_together': (('day', 'branch_id', 'department_id', 'practitioner_id'),), 'pk_attr': 'id', 'table_description': 'Bookings per clinic day, branch, department and doctor: kept, no-shows, consultations and conversions.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='VoucherDay',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('day', fields.DateField()),
                ('branch_id', fields.BigIntField()),
                ('source_type', fields.CharField(max_length=32)),
                ('redeemed', fields.IntField(default=0, db_default=0)),
            ],
            options={'table': 'report_voucher_day', 'app': 'reports', 'unique_together': (('day', 'branch_id', 'source_type'),), 'pk_attr': 'id', 'table_description': 'Vouchers redeemed (核销) per clinic day, branch and what issued them (mall, group buy, referral ...).'},
            bases=['Model'],
        ),
    ]
