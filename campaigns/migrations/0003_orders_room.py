"""Orders and payments move to their own app (`orders`); their tables stay, with every row."""

from tortoise import migrations

from kernel.migration_ops import HandOverModel


class Migration(migrations.Migration):
    dependencies = [('campaigns', '0002_groupbuy')]

    initial = False

    # Lines and refunds first: state refuses to forget a model another one still points at.
    operations = [
        HandOverModel(name='OrderLine'),
        HandOverModel(name='Refund'),
        HandOverModel(name='PaymentEvent'),
        HandOverModel(name='Order'),
    ]
