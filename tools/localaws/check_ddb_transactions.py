"""Checks the cheap TransactWriteItems rollback (ddb_transactions) against moto's own:
a cancelled transaction leaves every item as it was, a transaction no longer costs a copy
of the whole table, and (patched) a client token makes a resent transaction apply once. Usage: .venv/bin/python tools/localaws/check_ddb_transactions.py [original|patched]
"""
import os, sys, time

# In-process moto: an endpoint in the environment (the test stack's) must not redirect boto3.
os.environ.pop("AWS_ENDPOINT_URL", None)
import boto3
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from moto import mock_aws
mode = sys.argv[1] if len(sys.argv) > 1 else "patched"
if mode == "patched":
    from localaws import ddb_transactions
    ddb_transactions.install()

@mock_aws
def run():
    c = boto3.client("dynamodb", region_name="us-east-1")
    c.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    for i in range(3000):
        c.put_item(TableName="t", Item={"pk": {"S": f"p{i}"}, "sk": {"S": "x"}, "v": {"N": "1"}, "pad": {"S": "x" * 300}})
    # rollback check: update p1, insert new, then a failing condition -> nothing changes
    try:
        c.transact_write_items(TransactItems=[
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "p1"}, "sk": {"S": "x"}}, "UpdateExpression": "ADD v :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "new"}, "sk": {"S": "x"}}}},
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "p2"}, "sk": {"S": "x"}}, "ConditionExpression": "attribute_not_exists(pk)"}},
        ])
        print("ERROR: expected cancellation")
    except c.exceptions.TransactionCanceledException as e:
        pass
    v = c.get_item(TableName="t", Key={"pk": {"S": "p1"}, "sk": {"S": "x"}})["Item"]["v"]["N"]
    new = c.get_item(TableName="t", Key={"pk": {"S": "new"}, "sk": {"S": "x"}}).get("Item")
    p2 = c.get_item(TableName="t", Key={"pk": {"S": "p2"}, "sk": {"S": "x"}})["Item"]
    assert v == "1" and new is None and "pad" in p2, (v, new, p2)
    start = time.time()
    for i in range(200):
        c.transact_write_items(TransactItems=[
            {"Update": {"TableName": "t", "Key": {"pk": {"S": f"p{i}"}, "sk": {"S": "x"}}, "UpdateExpression": "ADD v :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
            {"Put": {"TableName": "t", "Item": {"pk": {"S": f"q{i}"}, "sk": {"S": "x"}}, "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "counter"}, "sk": {"S": "x"}}, "UpdateExpression": "ADD v :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        ])
    el = time.time() - start
    n = c.get_item(TableName="t", Key={"pk": {"S": "counter"}, "sk": {"S": "x"}})["Item"]["v"]["N"]
    assert n == "200"
    print(f"{mode}: rollback exact; 200 transactions of 3 items on a 3000-item table: {el*1000/200:.1f} ms each")
    if mode == "patched":
        # ClientRequestToken: the same transaction sent again (a lost answer) changes nothing;
        # the same token with other items is refused.
        add = [{"Update": {"TableName": "t", "Key": {"pk": {"S": "counter"}, "sk": {"S": "x"}}, "UpdateExpression": "ADD v :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
               {"Put": {"TableName": "t", "Item": {"pk": {"S": "once"}, "sk": {"S": "x"}}, "ConditionExpression": "attribute_not_exists(pk)"}}]
        for _ in range(3):
            c.transact_write_items(TransactItems=add, ClientRequestToken="lost-answer")
        n = c.get_item(TableName="t", Key={"pk": {"S": "counter"}, "sk": {"S": "x"}})["Item"]["v"]["N"]
        assert n == "201", n
        try:
            c.transact_write_items(TransactItems=add[:1], ClientRequestToken="lost-answer")
            raise AssertionError("expected IdempotentParameterMismatchException")
        except c.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "IdempotentParameterMismatchException", e.response
        print("patched: a resent transaction with its client token applies once; another one under the same token is refused")
run()
