# The function of the AWS Compute Blog post "Content Replication Using AWS
# Lambda and Amazon S3" (../../../shared/seed/content-replication-blog.txt),
# changed only as far as Python 3 requires: urllib.parse.unquote_plus for
# urllib.unquote_plus (which already returns str, so no .decode), and print
# as a function. Everything else, the client made in every invocation
# included, is the original's.
import urllib.parse
import boto3
import ast
import json
print('Loading function')

def lambda_handler(event, context):
    s3 = boto3.client('s3')
    sns_message = ast.literal_eval(event['Records'][0]['Sns']['Message'])
    target_bucket = context.function_name
    source_bucket = str(sns_message['Records'][0]['s3']['bucket']['name'])
    key = str(urllib.parse.unquote_plus(sns_message['Records'][0]['s3']['object']['key']))
    copy_source = {'Bucket':source_bucket, 'Key':key}
    print("Copying %s from bucket %s to bucket %s ..." % (key, source_bucket, target_bucket))
    s3.copy_object(Bucket=target_bucket, Key=key, CopySource=copy_source)
